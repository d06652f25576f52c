//! Deterministic orders-like test data for the benchmark script.
//!
//! `cargo run --release --example gen-orders -- ROWS DIR` writes DIR/orders.csv
//! (ROWS rows) and DIR/delta.csv (10% of the rows changed, 5% new), with the
//! values that make loaders stumble: quoted commas, doubled quotes, line
//! breaks inside fields, non-ASCII text, leading-zero codes, 19-digit ids,
//! decimals, timestamps and empty fields. The same ROWS always gives the
//! same bytes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: small, fast and the same everywhere.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PRODUCTS: [&str; 8] = [
    "Widget",
    "\"Widget, large\"",
    "Gadget",
    "\"Cable \"\"USB-C\"\", 2 m\"",
    "Café crème beans",
    "東京 tea set",
    "\"Desk lamp, brass\"",
    "Señal cable",
];
const NOTES: [&str; 6] = [
    "",
    "Leave at the front desk",
    "\"Gift wrap, please.\nCard: \"\"Happy birthday!\"\"\"",
    "Zürich office",
    "\"Bitte vor 10 Uhr liefern — danke!\"",
    "",
];

fn row(out: &mut impl Write, rng: &mut Rng, id: u64, day_offset: u64) -> std::io::Result<()> {
    let ext = 9_007_199_254_740_993_000u64 + id;
    let customer = rng.below(50_000);
    let zip = rng.below(100_000);
    let product = PRODUCTS[rng.below(PRODUCTS.len() as u64) as usize];
    let qty = 1 + rng.below(20);
    let cents = 99 + rng.below(50_000);
    let secs = 1_700_000_000 + id * 7 + day_offset * 86_400;
    let (d, s) = (secs / 86_400, secs % 86_400);
    let shipped = ["true", "false", ""][rng.below(3) as usize];
    let note = NOTES[rng.below(NOTES.len() as u64) as usize];
    // Days since epoch to a civil date.
    let z = d as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    writeln!(
        out,
        "{id},{ext},C{customer:05},{zip:05},{product},{qty},{}.{:02},{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z,{shipped},{note}",
        cents / 100,
        cents % 100,
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

const HEADER: &str =
    "order_id,external_ref,customer_id,zip,product,quantity,unit_price,ordered_at,shipped,note";

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rows: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = Path::new(args.get(2).map_or(".", String::as_str));
    std::fs::create_dir_all(dir)?;

    let mut rng = Rng(0x005e_ed0f_e71c_0001);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(dir.join("orders.csv"))?);
    writeln!(out, "{HEADER}")?;
    for id in 1..=rows {
        row(&mut out, &mut rng, id, 0)?;
    }
    out.flush()?;

    let mut rng = Rng(0x005e_ed0f_de17_a002);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(dir.join("delta.csv"))?);
    writeln!(out, "{HEADER}")?;
    for i in 0..rows / 10 {
        row(&mut out, &mut rng, 1 + i * 10, 30)?;
    }
    for id in rows + 1..=rows + rows / 20 {
        row(&mut out, &mut rng, id, 30)?;
    }
    out.flush()
}
