//! Values in and out: plan `args` (JSON) bound as typed parameters, result rows as JSON.
//!
//! Arguments are always bound, never spliced: a JSON string is bound as text, an integer as a
//! 64-bit integer, a float as a double, a boolean as a boolean, `null` as NULL (on PostgreSQL
//! an untyped NULL, so it fits any column). Lists and objects are bound as their JSON text.
//!
//! Result values map the same way on every database, so captures read alike everywhere:
//! integers and floats are JSON numbers, NUMERIC/DECIMAL are strings (a double would round
//! them), text is text, booleans are booleans, JSON is JSON, dates and timestamps are RFC 3339
//! strings (with `Z` when the value has a time zone, without an offset when it has none),
//! bytes are base64, NULL is null. A type without a mapping is shown as its text when the
//! server sent text, else as base64: cast it in SQL (`::text`) to choose.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::TryStreamExt as _;
use serde_json::{Map, Number, Value};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::mysql::{MySql, MySqlArguments, MySqlRow, MySqlValueRef};
use sqlx::postgres::types::{Oid, PgInterval};
use sqlx::postgres::{PgArgumentBuffer, PgArguments, PgRow, PgTypeInfo, PgValueRef, Postgres};
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};
use sqlx::types::Json;
use sqlx::{Arguments, Column, Decode, Either, Encode, Executor, Row, Type, TypeInfo, ValueRef};
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Rows kept in a result document; the rest are counted, not kept.
pub const MAX_ROWS: usize = 1000;

/// What one statement did.
#[derive(Debug, Default)]
pub struct StatementResult {
    /// As the server counts them (for PostgreSQL, a SELECT's rows too: see
    /// `Prepared::reads_only`).
    pub affected: u64,
    pub returned: u64,
    pub rows: Vec<Value>,
    pub truncated: bool,
}

/// One scalar argument, ready for any driver.
#[derive(Debug, Clone)]
enum Arg {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

fn arg(index: usize, v: &Value) -> Result<Arg, String> {
    Ok(match v {
        Value::Null => Arg::Null,
        Value::Bool(b) => Arg::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Arg::Int(i),
            (None, _) if n.is_u64() => {
                return Err(format!(
                    "arg ${}: {n} does not fit a 64-bit signed integer; pass it as a string",
                    index + 1
                ));
            }
            (None, Some(f)) => Arg::Float(f),
            (None, None) => Arg::Text(n.to_string()),
        },
        Value::String(s) => Arg::Text(s.clone()),
        other => Arg::Text(other.to_string()),
    })
}

/// An untyped NULL: PostgreSQL infers its type from where it is used, as psql does, so
/// `WHERE id = $1` with `null` works whatever the column's type.
struct PgNull;

impl Type<Postgres> for PgNull {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(0))
    }
}

impl Encode<'_, Postgres> for PgNull {
    fn encode_by_ref(&self, _: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Ok(IsNull::Yes)
    }
}

/// The arguments of one statement for one driver: the drivers' argument types differ, the
/// mapping does not (NULL is the only value each spells its own way).
macro_rules! args_for {
    ($name:ident, $args:ty, $null:expr) => {
        pub fn $name(args: &[Value]) -> Result<$args, String> {
            let mut out = <$args>::default();
            for (i, v) in args.iter().enumerate() {
                let added = match arg(i, v)? {
                    Arg::Null => out.add($null),
                    Arg::Bool(b) => out.add(b),
                    Arg::Int(n) => out.add(n),
                    Arg::Float(f) => out.add(f),
                    Arg::Text(s) => out.add(s),
                };
                added.map_err(|e| format!("arg ${}: {e}", i + 1))?;
            }
            Ok(out)
        }
    };
}

args_for!(pg_args, PgArguments, PgNull);
args_for!(mysql_args, MySqlArguments, None::<String>);
args_for!(sqlite_args, SqliteArguments, None::<String>);

/// Runs one statement as a prepared statement and collects what it did: rows affected, rows
/// returned and, with `keep`, the first [`MAX_ROWS`] rows as JSON. `persistent` statements
/// are cached by the connection (see `Conn::forget_statements` for when they are dropped).
pub async fn fetch<'c, DB>(
    conn: &'c mut DB::Connection,
    sql: &str,
    args: DB::Arguments,
    persistent: bool,
    keep: bool,
    row_json: fn(&DB::Row) -> Map<String, Value>,
    rows_affected: fn(&DB::QueryResult) -> u64,
) -> Result<StatementResult, sqlx::Error>
where
    DB: sqlx::Database + sqlx::database::HasStatementCache,
    &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    let query = sqlx::query_with::<DB, _>(sqlx::AssertSqlSafe(sql.to_string()), args)
        .persistent(persistent);
    let mut stream = conn.fetch_many(query);
    let mut out = StatementResult::default();
    while let Some(item) = stream.try_next().await? {
        match item {
            Either::Left(done) => out.affected += rows_affected(&done),
            Either::Right(row) => {
                out.returned += 1;
                if !keep {
                    continue;
                }
                if out.rows.len() < MAX_ROWS {
                    out.rows.push(Value::Object(row_json(&row)));
                } else {
                    out.truncated = true;
                }
            }
        }
    }
    Ok(out)
}

/// Columns in order; a name that appears twice keeps its first value.
fn row_object<R: Row>(row: &R, value: impl Fn(&R, usize) -> Value) -> Map<String, Value> {
    let mut out = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        if !out.contains_key(col.name()) {
            out.insert(col.name().to_string(), value(row, i));
        }
    }
    out
}

/// Decodes without sqlx's type check: the type was already chosen from the type name.
fn dec<'r, DB: sqlx::Database, T: Decode<'r, DB>>(
    v: <DB as sqlx::Database>::ValueRef<'r>,
) -> Option<T> {
    T::decode(v).ok()
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number)
}

fn bytes(b: &[u8]) -> Value {
    Value::String(BASE64.encode(b))
}

/// Text when it is text, else base64.
fn text_or_bytes(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => bytes(b),
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

pub fn pg_row(row: &PgRow) -> Map<String, Value> {
    row_object(row, |row, i| match row.try_get_raw(i) {
        Ok(v) if v.is_null() => Value::Null,
        Ok(v) => pg_value(v),
        Err(_) => Value::Null,
    })
}

fn pg_value(v: PgValueRef<'_>) -> Value {
    let name = v.type_info().name().to_string();
    let raw = v.as_bytes().ok().map(<[u8]>::to_vec);
    let mapped = match name.as_str() {
        "BOOL" => dec::<Postgres, bool>(v).map(Value::Bool),
        "INT2" => dec::<Postgres, i16>(v).map(Value::from),
        "INT4" => dec::<Postgres, i32>(v).map(Value::from),
        "INT8" => dec::<Postgres, i64>(v).map(Value::from),
        "OID" => dec::<Postgres, Oid>(v).map(|o| Value::from(o.0)),
        "FLOAT4" => dec::<Postgres, f32>(v).map(|f| float(f64::from(f))),
        "FLOAT8" => dec::<Postgres, f64>(v).map(float),
        "NUMERIC" => raw.as_deref().and_then(pg_numeric).map(Value::String),
        "JSON" | "JSONB" => dec::<Postgres, Json<Value>>(v).map(|j| j.0),
        "TIMESTAMPTZ" => dec::<Postgres, OffsetDateTime>(v).map(|t| Value::String(rfc3339_utc(t))),
        "TIMESTAMP" => dec::<Postgres, PrimitiveDateTime>(v).map(|t| Value::String(naive(t))),
        "DATE" => dec::<Postgres, Date>(v).map(|d| Value::String(date(d))),
        "TIME" => dec::<Postgres, Time>(v).map(|t| Value::String(time_of_day(t))),
        "INTERVAL" => dec::<Postgres, PgInterval>(v).map(|i| Value::String(iso_interval(&i))),
        "BYTEA" => raw.as_deref().map(bytes),
        "UUID" => raw
            .as_deref()
            .filter(|b| b.len() == 16)
            .map(|b| Value::String(uuid(b))),
        "VOID" => Some(Value::Null),
        "BOOL[]" => dec::<Postgres, Vec<Option<bool>>>(v).map(Value::from),
        "INT2[]" => dec::<Postgres, Vec<Option<i16>>>(v).map(Value::from),
        "INT4[]" => dec::<Postgres, Vec<Option<i32>>>(v).map(Value::from),
        "INT8[]" => dec::<Postgres, Vec<Option<i64>>>(v).map(Value::from),
        "FLOAT8[]" => dec::<Postgres, Vec<Option<f64>>>(v).map(|a| {
            Value::Array(
                a.into_iter()
                    .map(|f| f.map_or(Value::Null, float))
                    .collect(),
            )
        }),
        "TEXT[]" | "VARCHAR[]" | "NAME[]" | "BPCHAR[]" => {
            dec::<Postgres, Vec<Option<String>>>(v).map(Value::from)
        }
        _ if <str as Type<Postgres>>::compatible(&v.type_info()) => {
            dec::<Postgres, String>(v).map(Value::String)
        }
        _ => None,
    };
    // Enums and other text-like types arrive as text; the rest as base64 of the binary form.
    mapped.unwrap_or_else(|| raw.as_deref().map_or(Value::Null, text_or_bytes))
}

/// PostgreSQL's binary NUMERIC (base-10000 digits, a weight and a display scale) as exact
/// decimal text: `123.4500` stays `123.4500`.
fn pg_numeric(b: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<i16> { Some(i16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?])) };
    let ndigits = usize::try_from(word(0)?).ok()?;
    let weight = i32::from(word(2)?);
    let sign = word(4)? as u16;
    let dscale = usize::try_from(word(6)?).ok()?;
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        0x0000 | 0x4000 => {}
        _ => return None,
    }
    let digits: Vec<i16> = (0..ndigits)
        .map(|i| word(8 + 2 * i))
        .collect::<Option<_>>()?;
    let digit = |pos: i32| -> i16 {
        // pos: the power of 10000 (weight .. down); digits[k] has power weight - k.
        usize::try_from(weight - pos)
            .ok()
            .and_then(|k| digits.get(k).copied())
            .unwrap_or(0)
    };
    let mut int = String::new();
    for pos in (0..=weight.max(0)).rev() {
        let d = digit(pos);
        if int.is_empty() {
            if d != 0 || pos == 0 {
                int = d.to_string();
            }
        } else {
            int.push_str(&format!("{d:04}"));
        }
    }
    let mut frac = String::new();
    let mut pos = -1;
    while frac.len() < dscale {
        frac.push_str(&format!("{:04}", digit(pos)));
        pos -= 1;
    }
    frac.truncate(dscale);
    let negative = sign == 0x4000 && (int != "0" || frac.bytes().any(|c| c != b'0'));
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    out.push_str(&int);
    if dscale > 0 {
        out.push('.');
        out.push_str(&frac);
    }
    Some(out)
}

fn uuid(b: &[u8]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// ISO 8601 duration: `P1Y2M3DT4H5M6.5S`.
fn iso_interval(i: &PgInterval) -> String {
    let mut out = String::from("P");
    let (years, months) = (i.months / 12, i.months % 12);
    for (n, unit) in [(years, 'Y'), (months, 'M'), (i.days, 'D')] {
        if n != 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    let micros = i.microseconds;
    if micros != 0 {
        out.push('T');
        let (h, rest) = (micros / 3_600_000_000, micros % 3_600_000_000);
        let (m, rest) = (rest / 60_000_000, rest % 60_000_000);
        if h != 0 {
            out.push_str(&format!("{h}H"));
        }
        if m != 0 {
            out.push_str(&format!("{m}M"));
        }
        if rest != 0 {
            out.push_str(&format!(
                "{}{}S",
                rest / 1_000_000,
                fraction((rest % 1_000_000).unsigned_abs() as u32 * 1000)
            ));
        }
    }
    if out == "P" { "PT0S".into() } else { out }
}

// ---------------------------------------------------------------------------------------------
// MySQL / MariaDB

pub fn mysql_row(row: &MySqlRow) -> Map<String, Value> {
    row_object(row, |row, i| match row.try_get_raw(i) {
        Ok(v) if v.is_null() => Value::Null,
        Ok(v) => mysql_value(v),
        Err(_) => Value::Null,
    })
}

fn mysql_value(v: MySqlValueRef<'_>) -> Value {
    let ty = v.type_info().into_owned();
    let name = ty.name();
    let raw = dec::<MySql, Vec<u8>>(v.clone());
    let mapped = match name {
        // TINYINT(1) is how MySQL spells BOOLEAN; other values than 0 and 1 stay numbers.
        "BOOLEAN" => dec::<MySql, i64>(v).map(|n| match n {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            n => Value::from(n),
        }),
        "TINYINT" | "SMALLINT" | "INT" | "MEDIUMINT" | "BIGINT" | "YEAR" => {
            dec::<MySql, i64>(v).map(Value::from)
        }
        n if n.ends_with(" UNSIGNED") => dec::<MySql, u64>(v).map(Value::from),
        "FLOAT" => dec::<MySql, f32>(v).map(|f| float(f64::from(f))),
        "DOUBLE" => dec::<MySql, f64>(v).map(float),
        "DECIMAL" => dec::<MySql, String>(v).map(Value::String),
        "JSON" => dec::<MySql, Json<Value>>(v).map(|j| j.0),
        "DATE" => dec::<MySql, Date>(v).map(|d| Value::String(date(d))),
        // Shown in the session's time zone, which is the server's (as the mysql client sees
        // it): no offset is claimed.
        "DATETIME" | "TIMESTAMP" => {
            dec::<MySql, PrimitiveDateTime>(v).map(|t| Value::String(naive(t)))
        }
        "TIME" => {
            dec::<MySql, sqlx::mysql::types::MySqlTime>(v).map(|t| Value::String(t.to_string()))
        }
        "BIT" => raw
            .as_deref()
            .filter(|b| b.len() <= 8)
            .map(|b| Value::from(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))),
        _ if <str as Type<MySql>>::compatible(&ty) => dec::<MySql, String>(v).map(Value::String),
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
            raw.as_deref().map(bytes)
        }
        _ => None,
    };
    // Zero dates (`0000-00-00`) and other values without a mapping: their text.
    mapped.unwrap_or_else(|| raw.as_deref().map_or(Value::Null, text_or_bytes))
}

// ---------------------------------------------------------------------------------------------
// SQLite

pub fn sqlite_row(row: &SqliteRow) -> Map<String, Value> {
    row_object(row, sqlite_value)
}

/// SQLite types values, not columns: the value's own storage class decides (a column
/// declared BOOLEAN turns 0 and 1 into booleans).
fn sqlite_value(row: &SqliteRow, i: usize) -> Value {
    let raw = || row.try_get_raw(i).ok();
    let Some(v) = raw() else { return Value::Null };
    if v.is_null() {
        return Value::Null;
    }
    let declared_bool = row.columns()[i].type_info().name() == "BOOLEAN";
    let class = v.type_info().name().to_string();
    let mapped = match class.as_str() {
        "INTEGER" | "BOOLEAN" => dec::<Sqlite, i64>(v).map(|n| match n {
            0 | 1 if declared_bool => Value::Bool(n == 1),
            n => Value::from(n),
        }),
        "REAL" => dec::<Sqlite, f64>(v).map(float),
        "BLOB" => dec::<Sqlite, Vec<u8>>(v).map(|b| bytes(&b)),
        _ => None,
    };
    mapped
        .or_else(|| raw().and_then(dec::<Sqlite, String>).map(Value::String))
        .unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------------------------
// Dates and times, RFC 3339

fn date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// `.5`, `.000123`: the fraction of a second, without trailing zeros (as RFC 3339 writers do).
fn fraction(nanos: u32) -> String {
    if nanos == 0 {
        return String::new();
    }
    let s = format!(".{nanos:09}");
    s.trim_end_matches('0').to_string()
}

fn time_of_day(t: Time) -> String {
    format!(
        "{:02}:{:02}:{:02}{}",
        t.hour(),
        t.minute(),
        t.second(),
        fraction(t.nanosecond())
    )
}

/// A date and time without a time zone: RFC 3339 without the offset.
fn naive(t: PrimitiveDateTime) -> String {
    format!("{}T{}", date(t.date()), time_of_day(t.time()))
}

/// In UTC, with `Z`.
fn rfc3339_utc(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!("{}T{}Z", date(t.date()), time_of_day(t.time()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> Vec<u8> {
        let mut b = Vec::new();
        for w in [ndigits, weight, sign as i16, dscale] {
            b.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b
    }

    #[test]
    fn numeric_text_is_exact() {
        // 12345.6789: digits 1, 2345, 6789; weight 1; scale 4
        assert_eq!(
            pg_numeric(&numeric(3, 1, 0, 4, &[1, 2345, 6789])).unwrap(),
            "12345.6789"
        );
        // -0.0012 (scale 4): digit 12 at weight -1
        assert_eq!(
            pg_numeric(&numeric(1, -1, 0x4000, 4, &[12])).unwrap(),
            "-0.0012"
        );
        // 100000000 (1 0000 0000): digits [1], weight 2, scale 0
        assert_eq!(pg_numeric(&numeric(1, 2, 0, 0, &[1])).unwrap(), "100000000");
        // 123.4500 keeps its scale
        assert_eq!(
            pg_numeric(&numeric(2, 0, 0, 4, &[123, 4500])).unwrap(),
            "123.4500"
        );
        assert_eq!(pg_numeric(&numeric(0, 0, 0, 2, &[])).unwrap(), "0.00");
        assert_eq!(pg_numeric(&numeric(0, 0, 0xC000, 0, &[])).unwrap(), "NaN");
    }

    #[test]
    fn intervals_and_times() {
        let i = PgInterval {
            months: 14,
            days: 3,
            microseconds: 3_723_500_000,
        };
        assert_eq!(iso_interval(&i), "P1Y2M3DT1H2M3.5S");
        assert_eq!(
            iso_interval(&PgInterval {
                months: 0,
                days: 0,
                microseconds: 0
            }),
            "PT0S"
        );
        assert_eq!(fraction(500_000_000), ".5");
        assert_eq!(fraction(123_000), ".000123");
    }

    #[test]
    fn big_unsigned_args_are_refused_not_wrapped() {
        let e = pg_args(&[serde_json::json!(u64::MAX)]).unwrap_err();
        assert!(e.contains("$1"), "{e}");
    }
}
