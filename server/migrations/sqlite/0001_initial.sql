-- invigil's schema. Times are milliseconds since the Unix epoch (UTC); ids are text.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('student', 'professor', 'admin')),
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER
);

-- Only a SHA-256 of each token is kept; revoked rows stay so that a revoked token is told apart
-- from an unknown one (session_invalidated vs unauthenticated).
CREATE TABLE sessions (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users (id),
    token_hash       TEXT NOT NULL UNIQUE,
    device           TEXT,
    created_at       INTEGER NOT NULL,
    last_used_at     INTEGER NOT NULL,
    revoked_at       INTEGER,
    revoked_reason   TEXT,
    connected_before INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_live_by_user ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE evaluations (
    id         TEXT PRIMARY KEY,
    title      TEXT NOT NULL,
    phase      TEXT NOT NULL CHECK (phase IN ('draft', 'in_progress', 'grading', 'finished')),
    ends_at    INTEGER,
    access     TEXT NOT NULL CHECK (access IN ('open', 'list')),
    owner_id   TEXT NOT NULL REFERENCES users (id),
    questions  TEXT NOT NULL, -- JSON array of the contract's question objects
    created_at INTEGER NOT NULL
);

CREATE TABLE access_list (
    evaluation_id TEXT NOT NULL REFERENCES evaluations (id),
    user_id       TEXT NOT NULL REFERENCES users (id),
    PRIMARY KEY (evaluation_id, user_id)
) WITHOUT ROWID;
CREATE INDEX access_list_by_user ON access_list (user_id);

-- A row exists once a student has joined.
CREATE TABLE participations (
    evaluation_id  TEXT NOT NULL REFERENCES evaluations (id),
    user_id        TEXT NOT NULL REFERENCES users (id),
    status         TEXT NOT NULL CHECK (status IN ('in_progress', 'submitted', 'blocked')),
    blocked_reason TEXT,
    joined_at      INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (evaluation_id, user_id)
) WITHOUT ROWID;
CREATE INDEX participations_by_user ON participations (user_id);

-- The latest stored revision of each answer; while it is late, the last on-time one beside it.
CREATE TABLE answers (
    evaluation_id    TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    question_id      TEXT NOT NULL,
    revision         INTEGER NOT NULL,
    content          TEXT NOT NULL,
    saved_at         INTEGER NOT NULL,
    late             INTEGER NOT NULL,
    on_time_revision INTEGER,
    on_time_content  TEXT,
    on_time_saved_at INTEGER,
    PRIMARY KEY (evaluation_id, user_id, question_id),
    FOREIGN KEY (evaluation_id, user_id) REFERENCES participations (evaluation_id, user_id)
);

CREATE TABLE audit (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    evaluation_id TEXT NOT NULL REFERENCES evaluations (id),
    at            INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    username      TEXT,
    actor         TEXT,
    detail        TEXT NOT NULL
);
CREATE INDEX audit_by_evaluation ON audit (evaluation_id, id);
