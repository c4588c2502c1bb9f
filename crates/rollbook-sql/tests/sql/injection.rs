//! Arguments are bound, never spliced: text that would be SQL if spliced stays data, on
//! PostgreSQL and on MariaDB (where `$N` is rewritten to `?`).

use serde_json::json;

use crate::*;

async fn args_stay_data(db: TestDb) {
    db.exec(
        "CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL);
         CREATE TABLE notes (id INT PRIMARY KEY, body TEXT NOT NULL);
         INSERT INTO users VALUES (1, 'alice'), (2, 'bob')",
    )
    .await;
    let runner = SqlRunner::new();

    // Stored as text; no second statement runs.
    let ran = run(
        &runner,
        call(
            &db.url,
            &[(
                "INSERT INTO notes (id, body) VALUES ($1, $2)",
                vec![json!(1), json!("1; DROP TABLE users")],
            )],
        ),
    )
    .await;
    assert_eq!(ran.result()["rows_affected"], json!(1));
    assert_eq!(db.strings("SELECT COUNT(*) FROM users").await, [["2"]]);
    assert_eq!(
        db.strings("SELECT body FROM notes").await,
        [["1; DROP TABLE users"]]
    );

    // A WHERE that a splice would make always true matches nothing.
    for evil in ["' OR '1'='1", "alice' --", "$1"] {
        let ran = run(
            &runner,
            call(
                &db.url,
                &[("SELECT id FROM users WHERE name = $1", vec![json!(evil)])],
            ),
        )
        .await;
        assert_eq!(ran.result()["rows"], json!([]), "{evil}");
    }
    let ran = run(
        &runner,
        call(
            &db.url,
            &[(
                "DELETE FROM users WHERE name = $1",
                vec![json!("x' OR 'a'='a")],
            )],
        ),
    )
    .await;
    assert_eq!(ran.result()["rows_affected"], json!(0));
    assert_eq!(db.strings("SELECT COUNT(*) FROM users").await, [["2"]]);

    // Placeholders inside string literals are text, and typed args bind with their types.
    // (PostgreSQL cannot type a lone `$2 IS NULL`: the COALESCE gives it one.)
    let ran = run(
        &runner,
        call(
            &db.url,
            &[(
                "SELECT '$1' AS literal, name FROM users WHERE id = $1 AND COALESCE($2, 'none') = 'none'",
                vec![json!(2), json!(null)],
            )],
        ),
    )
    .await;
    assert_eq!(
        ran.result()["rows"],
        json!([{ "literal": "$1", "name": "bob" }])
    );
}

#[tokio::test]
async fn bound_args_stay_data_on_postgres() {
    args_stay_data(TestDb::pg("inject").await).await;
}

#[tokio::test]
async fn bound_args_stay_data_on_mariadb() {
    args_stay_data(TestDb::mysql("inject").await).await;
}

#[tokio::test]
async fn out_of_order_placeholders_are_refused_for_mysql_before_connecting() {
    // Port 1 is closed: a refusal that names the placeholders proves nothing was sent.
    let ran = run(
        &SqlRunner::new(),
        call(
            "mysql://root@127.0.0.1:1/x",
            &[("UPDATE t SET a = $2 WHERE b = $1", vec![json!(1), json!(2)])],
        ),
    )
    .await;
    assert_eq!(
        ran.failure(),
        "statement 1/1 (UPDATE t SET a = $2 WHERE b = $1): it uses $2 where $1 comes next: MySQL binds `?` in order, so write $1, $2, ... in order, each once (repeat a value in `args` to use it twice)"
    );
}
