"""Writes the bad-input corpus in this directory (the files are committed;
rerun after adding a case). Each file is one hostile input; tests/corpus.rs
says what each must do."""
import json
import pathlib

here = pathlib.Path(__file__).parent
cases = {
    # CSV: quoting
    "unterminated-quote-last-field.csv": b'a,b\n1,"open\n',
    "unterminated-quote-first-field.csv": b'a,b\n"open,1\n2,3\n',
    "unterminated-quote-after-rows.csv": b"a,b\n1,2\n3,4\n5,\"x\n6,7\n",
    "unterminated-quote-in-header.csv": b'"a,b\n1,2\n',
    "stray-char-after-quote.csv": b'a,b\n"x"y,2\n3,4\n',
    "quote-then-space.csv": b'a,b\n"x" ,2\n',
    # CSV: shape
    "ragged-short-row.csv": b"a,b,c\n1,2,3\n4,5\n",
    "ragged-long-row.csv": b"a,b\n1,2\n3,4,5\n",
    "ragged-many-rows.csv": b"a,b\n1\n2\n3\n4,5\n",
    "trailing-delimiter.csv": b"a,b\n1,2,\n",
    "header-only.csv": b"a,b,c\n",
    "header-only-no-newline.csv": b"a,b,c",
    "empty.csv": b"",
    "only-newlines.csv": b"\n\n\n",
    "duplicate-header.csv": b"id,name,id\n1,2,3\n",
    "duplicate-header-case.csv": b"Name,name\n1,2\n",
    "empty-header-name.csv": b"a,,c\n1,2,3\n",
    # CSV: encoding
    "invalid-utf8-field.csv": b"a,b\n1,\xff\xfe\n2,ok\n",
    "invalid-utf8-header.csv": b"a,\xc3\x28\n1,2\n",
    "latin1-text.csv": b"name\nJos\xe9\n",
    "truncated-utf8.csv": b"name\nab\xe2\x82\n",
    "nul-byte.csv": b"a,b\n1,x\x00y\n",
    "bom-only.csv": b"\xef\xbb\xbf",
    "bom-and-crlf.csv": b"\xef\xbb\xbfa,b\r\n1,2\r\n",
    # CSV: values
    "huge-field.csv": b"a,b\n1," + b"x" * 2_000_000 + b"\n",
    "huge-integer.csv": b"id\n123456789012345678901234567890\n",
    "integer-overflow-later.csv": b"id\n1\n2\n9223372036854775808\n",
    "mixed-dates.csv": b"d\n2026-11-01\n01/11/2026\nNov 1 2026\n",
    "leading-zeros.csv": b"zip\n00501\n02134\n",
    "float-precision.csv": b"p\n0.1\n0.12345678901234567890\n",
    "numbers-with-spaces.csv": b"n\n 1\n2 \n",
    "cr-line-endings.csv": b"a,b\r1,2\r\"x\ry\",4\r",
    # NDJSON
    "not-json.ndjson": b'{"a":1}\nnot json\n',
    "array-line.ndjson": b'{"a":1}\n[1,2]\n',
    "string-line.ndjson": b'{"a":1}\n"text"\n',
    "number-line.ndjson": b'{"a":1}\n42\n',
    "null-line.ndjson": b'{"a":1}\nnull\n',
    "truncated-object.ndjson": b'{"a":1}\n{"a":\n',
    "two-objects-one-line.ndjson": b'{"a":1} {"a":2}\n',
    "invalid-utf8.ndjson": b'{"a":"\xff"}\n',
    "bad-escape.ndjson": b'{"a":"\\q"}\n',
    "control-char-in-string.ndjson": b'{"a":"x\x01y"}\n',
    "deeply-nested.ndjson": b'{"a":' + b"[" * 3000 + b"]" * 3000 + b"}\n",
    "huge-number.ndjson": b'{"n":1e999}\n',
    "big-integer.ndjson": b'{"n":123456789012345678901234567890}\n',
    "duplicate-keys.ndjson": b'{"a":1,"a":2}\n',
    "empty.ndjson": b"",
    "blank-lines.ndjson": b'\n\n{"a":1}\n\n',
    "bom.ndjson": b'\xef\xbb\xbf{"a":1}\n',
    # Control lines in the wrong place
    "end-without-begin.ndjson": b'{"a":1}\n{"@etl":"end","stream":"s","rows":1}\n',
    "begin-without-end.ndjson": b'{"@etl":"begin","stream":"s"}\n{"a":1}\n',
    "nested-begin.ndjson": b'{"@etl":"begin","stream":"s"}\n{"a":1}\n{"@etl":"begin","stream":"t"}\n',
    "wrong-end-count.ndjson": b'{"@etl":"begin","stream":"s"}\n{"a":1}\n{"@etl":"end","stream":"s","rows":5}\n',
    "record-after-end.ndjson": b'{"@etl":"begin","stream":"s"}\n{"@etl":"end","stream":"s","rows":0}\n{"a":1}\n',
    "end-without-rows.ndjson": b'{"@etl":"begin","stream":"s"}\n{"@etl":"end","stream":"s"}\n',
    "control-not-string.ndjson": b'{"@etl":5}\n',
    "unknown-control.ndjson": b'{"@etl":"bogus","a":1}\n{"a":2}\n',
    # JSON arrays
    "array-missing-comma.json": b'[{"a":1}\n{"a":2}]\n',
    "array-unclosed.json": b'[{"a":1},\n',
    "array-of-scalars.json": b"[1, 2]\n",
    "object-not-array.json": b'{"a":1}\n',
    "array-trailing-garbage.json": b'[{"a":1}] x\n',
    "array-form-feed.json": b'[{"a":1},\n\x0c{"a":2}]\n',
    "bom-array.json": b'\xef\xbb\xbf[{"a":1}]\n',
}
for name, data in cases.items():
    (here / name).write_bytes(data)
print(len(cases), "files")
