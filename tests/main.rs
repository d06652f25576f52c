//! Integration tests: the real binaries.
