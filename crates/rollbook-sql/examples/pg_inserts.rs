//! One timed attempt of the `sql` runner, for `benches/pg-inserts.sh`: the INSERT statements
//! of a SQL file (the one `psql -f` runs), or the same rows with bound arguments, as one step
//! with `transaction: true`. Prints the wall time in milliseconds, connection included.
//!
//!   pg_inserts URL FILE literal|bound

use std::sync::Arc;
use std::time::{Duration, Instant};

use rollbook_exec::runner::{Attempt, Outcome, OutputSink, Runner};
use rollbook_plan::action::{Action, SqlCall, SqlStatement};
use rollbook_plan::model::RowsExpect;
use rollbook_sql::SqlRunner;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, file, mode] = args.as_slice() else {
        eprintln!("usage: pg_inserts URL FILE literal|bound");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(file).expect("the SQL file");
    let literal: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("INSERT"))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    let statements: Vec<SqlStatement> = match mode.as_str() {
        "literal" => literal
            .iter()
            .map(|l| SqlStatement {
                text: l.to_string(),
                args: vec![],
            })
            .collect(),
        "bound" => (1..=literal.len())
            .map(|i| SqlStatement {
                text: "INSERT INTO bench (id, name, value) VALUES ($1, $2, $3)".into(),
                args: vec![json!(i), json!(format!("name-{i}")), json!(i as f64 * 1.5)],
            })
            .collect(),
        other => panic!("mode `{other}`: literal or bound"),
    };
    let n = statements.len() as u64;
    let call = SqlCall {
        connection: None,
        url: url.clone(),
        statements,
        transaction: true,
        expect_rows_affected: Some(RowsExpect::Exactly(n)),
        lock_timeout: None,
        statement_timeout: Some(Duration::from_secs(300)),
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let lines = tokio::spawn(async move {
        let mut count = 0usize;
        while rx.recv().await.is_some() {
            count += 1;
        }
        count
    });
    let runner = SqlRunner::new();
    let started = Instant::now();
    let outcome = runner
        .run(
            &Action::Sql(call),
            Attempt::new(
                Arc::from("bench"),
                1,
                CancellationToken::new(),
                OutputSink::new(Arc::from("bench"), tx),
            ),
        )
        .await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    drop(runner);
    match outcome {
        Outcome::Succeeded { result } => assert_eq!(result["rows_affected"], json!(n)),
        Outcome::Failed { message, .. } => panic!("the step failed: {message}"),
    }
    let lines = lines.await.unwrap();
    assert!(lines as u64 > n, "one output line per statement");
    println!("{ms:.1}");
}
