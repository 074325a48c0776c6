-- invigil's schema on PostgreSQL: the same tables as on SQLite, plus what several nodes on one
-- database share (nodes, presence, events). Times are milliseconds since the Unix epoch (UTC);
-- ids are text.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('student', 'professor', 'admin')),
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT
);

-- Only a SHA-256 of each token is kept; revoked rows stay so that a revoked token is told apart
-- from an unknown one (session_invalidated vs unauthenticated).
CREATE TABLE sessions (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users (id),
    token_hash       TEXT NOT NULL UNIQUE,
    device           TEXT,
    created_at       BIGINT NOT NULL,
    last_used_at     BIGINT NOT NULL,
    revoked_at       BIGINT,
    revoked_reason   TEXT,
    connected_before BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX sessions_live_by_user ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE evaluations (
    id         TEXT PRIMARY KEY,
    title      TEXT NOT NULL,
    phase      TEXT NOT NULL CHECK (phase IN ('draft', 'in_progress', 'grading', 'finished')),
    ends_at    BIGINT,
    access     TEXT NOT NULL CHECK (access IN ('open', 'list')),
    owner_id   TEXT NOT NULL REFERENCES users (id),
    questions  JSONB NOT NULL, -- array of the contract's question objects
    created_at BIGINT NOT NULL
);

CREATE TABLE access_list (
    evaluation_id TEXT NOT NULL REFERENCES evaluations (id),
    user_id       TEXT NOT NULL REFERENCES users (id),
    PRIMARY KEY (evaluation_id, user_id)
);
CREATE INDEX access_list_by_user ON access_list (user_id);

-- A row exists once a student has joined.
CREATE TABLE participations (
    evaluation_id  TEXT NOT NULL REFERENCES evaluations (id),
    user_id        TEXT NOT NULL REFERENCES users (id),
    status         TEXT NOT NULL CHECK (status IN ('in_progress', 'submitted', 'blocked')),
    blocked_reason TEXT,
    joined_at      BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (evaluation_id, user_id)
);
CREATE INDEX participations_by_user ON participations (user_id);

-- The latest stored revision of each answer; while it is late, the last on-time one beside it.
CREATE TABLE answers (
    evaluation_id    TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    question_id      TEXT NOT NULL,
    revision         BIGINT NOT NULL,
    content          TEXT NOT NULL,
    saved_at         BIGINT NOT NULL,
    late             BOOLEAN NOT NULL,
    on_time_revision BIGINT,
    on_time_content  TEXT,
    on_time_saved_at BIGINT,
    PRIMARY KEY (evaluation_id, user_id, question_id),
    FOREIGN KEY (evaluation_id, user_id) REFERENCES participations (evaluation_id, user_id)
);

CREATE TABLE audit (
    id            BIGSERIAL PRIMARY KEY,
    evaluation_id TEXT NOT NULL REFERENCES evaluations (id),
    at            BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    username      TEXT,
    actor         TEXT,
    detail        TEXT NOT NULL
);
CREATE INDEX audit_by_evaluation ON audit (evaluation_id, id);

-- ---- the cluster ----------------------------------------------------------------------------

-- Every running server node, with its heartbeat (database clock). A node whose heartbeat is older
-- than its expiry_ms (3 × its heartbeat period, at least 3 s) is dead: its presence rows stop
-- counting and a live node sweeps them.
CREATE TABLE nodes (
    id           TEXT PRIMARY KEY,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    expiry_ms    BIGINT NOT NULL
);

-- One row per open student connection (socket or event stream), on the node that holds it. A
-- student is connected while a row of a live node names a session of theirs that is not revoked.
CREATE TABLE presence (
    node_id    TEXT NOT NULL,
    connection BIGINT NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    opened_at  BIGINT NOT NULL,
    PRIMARY KEY (node_id, connection)
);
CREATE INDEX presence_by_user ON presence (user_id);

-- What each committed transaction means for live connections, as the JSON array of its events.
-- The transaction announces the row's id with pg_notify('invigil_events', id); every node listens
-- and publishes the events on its hub in notification order, which is commit order. Rows are
-- deleted after a few minutes.
CREATE TABLE events (
    id         BIGSERIAL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    payload    JSON NOT NULL
);
CREATE INDEX events_by_age ON events (created_at);
