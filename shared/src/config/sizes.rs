//! Byte sizes as a config writes them (`"32MiB"`, `1048576`).

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------
// Byte sizes
// ---------------------------------------------------------------------------------------------

/// A number of bytes, written in the config as an integer (`268435456`) or a string with a
/// unit (`"256MiB"`, `"8 MiB"`, `"1GB"`, `"1.5 GiB"`). Units are case-insensitive: `B`,
/// `KB` `MB` `GB` `TB` (powers of 1000) and `KiB` `MiB` `GiB` `TiB` (powers of 1024).
/// Serialized as the integer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` KiB.
    pub const fn kib(n: u64) -> Self {
        ByteSize(n * KIB)
    }

    /// `n` MiB.
    pub const fn mib(n: u64) -> Self {
        ByteSize(n * MIB)
    }

    /// `n` GiB.
    pub const fn gib(n: u64) -> Self {
        ByteSize(n * GIB)
    }

    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// The number of bytes as a `usize`, saturating on 32-bit targets.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

/// Why a byte size could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a byte size: {reason}; write an integer number of bytes or a number and a unit, e.g. \"256MiB\", \"8 MiB\", \"1GB\" (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
)]
pub struct ByteSizeError {
    /// The text that was given.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

impl FromStr for ByteSize {
    type Err = ByteSizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ByteSizeError { input: s.to_owned(), reason: reason.to_owned() };
        let text = s.trim();
        let number_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let (number, unit) = text.split_at(number_end);
        let unit = unit.trim();
        let multiplier: u128 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            "kib" => KIB.into(),
            "mib" => MIB.into(),
            "gib" => GIB.into(),
            "tib" => TIB.into(),
            _ => return Err(err(&format!("unknown unit {unit:?}"))),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
            return Err(err("the number is missing or malformed"));
        }
        if whole.len() + fraction.len() > 24 {
            return Err(err("the number is too large"));
        }
        let digits = |d: &str| d.bytes().fold(0u128, |acc, c| acc * 10 + u128::from(c - b'0'));
        let scale = 10u128.pow(u32::try_from(fraction.len()).map_err(|_| err("the number is too large"))?);
        let scaled = (digits(whole) * scale + digits(fraction)) * multiplier;
        if !scaled.is_multiple_of(scale) {
            return Err(err("it is not a whole number of bytes"));
        }
        u64::try_from(scaled / scale).map(ByteSize).map_err(|_| err("the number is too large"))
    }
}

impl fmt::Display for ByteSize {
    /// The largest binary unit that divides the size exactly: `256 MiB`, `1000 B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, name) in [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
            if self.0 >= unit && self.0.is_multiple_of(unit) {
                return write!(f, "{} {name}", self.0 / unit);
            }
        }
        write!(f, "{} B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ByteSizeVisitor;

        impl Visitor<'_> for ByteSizeVisitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte size: an integer number of bytes or a string like \"256MiB\", \"8 MiB\", \"1GB\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }

        d.deserialize_any(ByteSizeVisitor)
    }
}
