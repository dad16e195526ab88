//! Stock quotes as CSV: a random walk per symbol, in integer cents so that every platform prints the
//! same prices.

use std::collections::HashSet;
use std::io::{self, Write};

use crate::Rng;

/// How many symbols trade: each trading day has one row per symbol.
pub const SYMBOLS: usize = 500;

const HEADER: &str = "symbol,date,open,high,low,close,volume\n";

/// The first trading day, as days since 1970-01-01: 2020-01-02.
const FIRST_DAY: i64 = 18_263;

/// One symbol's state between days.
struct Symbol {
    name: String,
    /// The last close, in cents.
    close: u64,
    /// Typical daily move, in basis points of the price.
    volatility: u64,
    /// Typical daily volume, in shares.
    volume: u64,
}

/// Generates `rows` rows of daily quotes after the header `symbol,date,open,high,low,close,volume`,
/// the same for the same `rows` and `seed`.
///
/// There are [`SYMBOLS`] symbols of one to four capital letters. Rows go day by day (weekdays from
/// 2020-01-02, `YYYY-MM-DD`) and within a day symbol by symbol, so `rows` that is not a multiple of
/// [`SYMBOLS`] ends part-way through a day. Prices are random walks from 5.00 to 500.00 with two
/// decimals, never below 1.00, with `low <= open, close <= high`; volumes are whole numbers of
/// shares around each symbol's typical volume, with a rare spike. Every line ends with `\n`.
pub fn stocks_csv(rows: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER.len() + rows * 48);
    write_stocks_csv(rows as u64, seed, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// Writes the quotes of [`stocks_csv`] to `out` as a stream (so they can be gigabytes) and returns
/// how many bytes it wrote; the bytes are those `stocks_csv(rows, seed)` returns.
pub fn write_stocks_csv(rows: u64, seed: u64, out: &mut impl Write) -> io::Result<u64> {
    let mut rng = Rng::new(seed);
    let mut symbols = symbols(&mut rng);
    out.write_all(HEADER.as_bytes())?;
    let mut written = HEADER.len() as u64;
    let mut line = Vec::with_capacity(64);
    let mut day = FIRST_DAY;
    for row in 0..rows {
        let index = (row % SYMBOLS as u64) as usize;
        if row > 0 && index == 0 {
            day = next_weekday(day);
        }
        let symbol = &mut symbols[index];
        let open = moved(
            symbol.close,
            gaussian_bp(&mut rng) * symbol.volatility as i64 / 4,
        );
        let close = moved(open, gaussian_bp(&mut rng) * symbol.volatility as i64);
        let wick = |rng: &mut Rng| rng.below(symbol.volatility / 2 + 1);
        let high = open.max(close) * (10_000 + wick(&mut rng)) / 10_000;
        let low = (open.min(close) * (10_000 - wick(&mut rng)) / 10_000).max(100);
        let mut volume = symbol.volume * rng.between(30, 300) / 100;
        if rng.chance(10) {
            volume *= rng.between(4, 10);
        }
        symbol.close = close;
        line.clear();
        writeln!(
            line,
            "{},{},{},{},{},{},{volume}",
            symbol.name,
            date(day),
            Cents(open),
            Cents(high),
            Cents(low),
            Cents(close),
        )?;
        out.write_all(&line)?;
        written += line.len() as u64;
    }
    Ok(written)
}

fn symbols(rng: &mut Rng) -> Vec<Symbol> {
    let mut seen = HashSet::new();
    let mut symbols = Vec::with_capacity(SYMBOLS);
    while symbols.len() < SYMBOLS {
        // Mostly three and four letters, as on real exchanges; 26 + 26^2 short names would run out.
        let len = match rng.below(10) {
            0 => 1,
            1 | 2 => 2,
            3..=5 => 3,
            _ => 4,
        };
        let name: String = (0..len)
            .map(|_| char::from(b'A' + rng.below(26) as u8))
            .collect();
        if seen.insert(name.clone()) {
            symbols.push(Symbol {
                name,
                close: rng.between(500, 50_000),
                volatility: rng.between(80, 350),
                volume: rng.between(10_000, 5_000_000),
            });
        }
    }
    symbols
}

/// About a standard normal draw, times 10 000: the sum of twelve uniforms minus their mean
/// (Irwin–Hall), in integers. Always within ±60 000.
fn gaussian_bp(rng: &mut Rng) -> i64 {
    (0..12).map(|_| rng.below(10_001) as i64).sum::<i64>() - 60_000
}

/// `cents` moved by `scaled_bp / 10 000` basis points, never below 1.00.
fn moved(cents: u64, scaled_bp: i64) -> u64 {
    // Basis points, capped at ±50% a day.
    let bp = (scaled_bp / 10_000).clamp(-5_000, 5_000);
    let moved = cents as i64 * (10_000 + bp) / 10_000;
    moved.max(100) as u64
}

/// `12.05` for 1205.
struct Cents(u64);

impl std::fmt::Display for Cents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// The weekday after `day` (days since 1970-01-01, a Thursday).
fn next_weekday(mut day: i64) -> i64 {
    loop {
        day += 1;
        // 0 = Thursday, so 2 and 3 are Saturday and Sunday.
        if !matches!(day.rem_euclid(7), 2 | 3) {
            return day;
        }
    }
}

/// `YYYY-MM-DD` of a day since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_weekdays() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(FIRST_DAY), "2020-01-02");
        assert_eq!(date(FIRST_DAY + 59), "2020-03-01");
        // Thursday 2020-01-02 → Friday, then over the weekend to Monday.
        assert_eq!(date(next_weekday(FIRST_DAY)), "2020-01-03");
        assert_eq!(date(next_weekday(next_weekday(FIRST_DAY))), "2020-01-06");
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = stocks_csv(2000, 1);
        assert_eq!(a, stocks_csv(2000, 1));
        assert_ne!(a, stocks_csv(2000, 2));
    }

    #[test]
    fn the_stream_writes_the_same_bytes_and_counts_them() {
        let mut streamed = Vec::new();
        let written = write_stocks_csv(1234, 9, &mut streamed).unwrap();
        assert_eq!(streamed, stocks_csv(1234, 9));
        assert_eq!(written, streamed.len() as u64);
    }

    #[test]
    fn rows_are_well_formed_quotes() {
        let rows = 3 * SYMBOLS + 17;
        let csv = String::from_utf8(stocks_csv(rows, 5)).unwrap();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some(HEADER.trim_end()));
        let mut symbols = HashSet::new();
        let mut dates = HashSet::new();
        let mut count = 0;
        for line in lines {
            count += 1;
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 7, "{line}");
            symbols.insert(fields[0].to_owned());
            assert!(
                (1..=4).contains(&fields[0].len())
                    && fields[0].bytes().all(|b| b.is_ascii_uppercase()),
                "{line}"
            );
            dates.insert(fields[1].to_owned());
            let price = |s: &str| {
                let (whole, cents) = s.split_once('.').expect("two decimals");
                assert_eq!(cents.len(), 2, "{line}");
                whole.parse::<u64>().unwrap() * 100 + cents.parse::<u64>().unwrap()
            };
            let [open, high, low, close] = [2, 3, 4, 5].map(|i| price(fields[i]));
            assert!(low >= 100, "{line}");
            assert!(low <= open.min(close) && open.max(close) <= high, "{line}");
            assert!(fields[6].parse::<u64>().unwrap() > 0, "{line}");
        }
        assert_eq!(count, rows);
        assert_eq!(symbols.len(), SYMBOLS);
        assert_eq!(dates.len(), 4);
        assert!(csv.ends_with('\n'));
    }
}
