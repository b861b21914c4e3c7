"""QRH surrogate library."""
