-- rollbook's shared state, schema version 1. Applied by `rollbook state init` (or on first
-- use with `--state-init`), in one transaction, by a role that may create tables. The rules
-- (which tables are append-only, the least privileges) are in docs/team-state.md.

-- The schema's version: one row per version applied.
CREATE TABLE IF NOT EXISTS rollbook_schema (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- One row per run: what ran, with which inputs, by whom, why (run.json), and the plan and
-- inventory text as they were. Updated only by a resume with --allow-changed-plan.
CREATE TABLE rollbook_runs (
    run_id         text PRIMARY KEY,
    plan           text NOT NULL,
    started_at     text NOT NULL,
    meta           text NOT NULL,
    plan_text      text NOT NULL,
    inventory_text text,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Every controller (a `rollbook run` or `resume` process) of a run, with the fencing token of
-- the lock it held. Append-only. The events of a run are accepted only from the controller
-- with the largest token.
CREATE TABLE rollbook_controllers (
    run_id     text NOT NULL REFERENCES rollbook_runs (run_id),
    token      bigint NOT NULL,
    user_name  text NOT NULL,
    host       text NOT NULL,
    pid        integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, token)
);

-- The journal: one row per event, in order (seq from 1), exactly the line the local journal
-- has. Append-only: rollbook never updates or deletes a row here.
-- No foreign key to rollbook_runs: a row check per event would cost the shipper more than the
-- rest of its insert, and rollbook writes a run's row before any of its events.
CREATE TABLE rollbook_events (
    run_id     text NOT NULL,
    seq        bigint NOT NULL,
    token      bigint NOT NULL,
    kind       text NOT NULL,
    line       text NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX rollbook_events_ends ON rollbook_events (run_id, seq)
    WHERE kind IN ('run_started', 'run_resumed', 'run_finished');

-- Steps' output: each node's log as chunks of whole lines at their byte offset. Append-only.
CREATE TABLE rollbook_logs (
    run_id   text NOT NULL,
    phase    text NOT NULL,
    node     text NOT NULL,
    "offset" bigint NOT NULL,
    chunk    bytea NOT NULL,
    PRIMARY KEY (run_id, phase, node, "offset")
);

-- Locks: one row per held lock, with its lease. A row whose lease has expired is a stale
-- lock: its holder is named until someone takes it over.
CREATE TABLE rollbook_locks (
    key        text PRIMARY KEY,
    run_id     text NOT NULL,
    token      bigint NOT NULL,
    user_name  text NOT NULL,
    host       text NOT NULL,
    pid        integer NOT NULL,
    since      text NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Fencing tokens: every lock acquisition takes the next one.
CREATE SEQUENCE rollbook_fencing;

INSERT INTO rollbook_schema (version) VALUES (1);
