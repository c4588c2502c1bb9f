//! How result values become JSON, pinned by snapshots (reviewed by hand): numbers stay
//! numbers, decimals are exact strings, JSON is JSON, times are RFC 3339, bytes base64.

use serde_json::json;

use crate::*;

#[tokio::test]
async fn postgres_values_map_to_json() {
    let db = TestDb::pg("types").await;
    db.exec(
        r#"CREATE TYPE mood AS ENUM ('calm', 'busy');
        CREATE TABLE typed (
          small smallint, i int, big bigint, n numeric(12,4), neg numeric, f4 real, f8 float8,
          t text, v varchar(10), ok bool, j jsonb, js json, ts timestamptz, naive timestamp,
          d date, tm time, raw bytea, nothing text, u uuid, iv interval, ints int[],
          texts text[], m mood
        );
        INSERT INTO typed VALUES (
          -2, 1, 9007199254740993, 12345.6789, -0.0012, 1.5, 0.1,
          'héllo "world"', 'v', true, '{"a": [1, 2.5], "b": null}', '{"k": "v"}',
          '2026-01-02 03:04:05.5+02', '2026-01-02 03:04:05', '2026-01-02', '12:30:00.25',
          '\x00ff10', NULL, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 year 2 days 03:04:05',
          ARRAY[1, NULL, 3], ARRAY['a', 'b'], 'busy'
        )"#,
    )
    .await;
    let ran = run(&SqlRunner::new(), one(&db.url, "SELECT * FROM typed")).await;
    insta::assert_json_snapshot!("postgres_types", ran.result());
}

#[tokio::test]
async fn mariadb_values_map_to_json() {
    let db = TestDb::mysql("types").await;
    db.exec(
        r#"CREATE TABLE typed (
          tiny TINYINT, i INT, big BIGINT, ubig BIGINT UNSIGNED, n DECIMAL(12,4), f FLOAT,
          d8 DOUBLE, t TEXT, v VARCHAR(10), ok BOOLEAN, j JSON, ts TIMESTAMP NULL,
          dt DATETIME(3), d DATE, tm TIME, raw VARBINARY(8), bl BLOB, nothing TEXT, y YEAR,
          bits BIT(8), e ENUM('calm', 'busy')
        );
        INSERT INTO typed VALUES (
          -2, 1, 9007199254740993, 18446744073709551615, 12345.6789, 1.5, 0.1,
          'héllo "world"', 'v', true, '{"a": [1, 2.5], "b": null}', '2026-01-02 03:04:05',
          '2026-01-02 03:04:05.500', '2026-01-02', '-12:30:00', x'00ff10', x'cafe', NULL, 2026,
          b'00000101', 'busy'
        )"#,
    )
    .await;
    let ran = run(&SqlRunner::new(), one(&db.url, "SELECT * FROM typed")).await;
    insta::assert_json_snapshot!("mariadb_types", ran.result());
}

#[tokio::test]
async fn rows_are_bounded_and_the_rest_counted() {
    let db = TestDb::pg("types_many").await;
    let ran = run(
        &SqlRunner::new(),
        one(&db.url, "SELECT g AS n FROM generate_series(1, 1500) AS g"),
    )
    .await;
    let r = ran.result();
    assert_eq!(r["rows"].as_array().unwrap().len(), rollbook_sql::MAX_ROWS);
    assert_eq!(r["rows"][999], json!({ "n": 1000 }));
    assert_eq!(r["truncated"], json!(true));
    assert_eq!(r["rows_affected"], json!(0));
    assert!(
        ran.output().contains("1500 rows returned"),
        "{}",
        ran.output()
    );
}
