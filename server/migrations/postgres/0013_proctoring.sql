-- Proctoring (contract v2): an evaluation's settings, and the integrity events its students'
-- desktop apps report.

-- The contract's `proctoring` object; `{}` reads as the defaults (nothing reported).
ALTER TABLE evaluations ADD COLUMN proctoring JSONB NOT NULL DEFAULT '{}';

-- One row per event, stored once per (evaluation, student, event id): a repeat is acknowledged
-- again and changes nothing. `seq` orders events as they were stored (the summary's `last`).
CREATE TABLE integrity_events (
    seq           BIGSERIAL PRIMARY KEY,
    evaluation_id TEXT NOT NULL REFERENCES evaluations (id),
    user_id       TEXT NOT NULL REFERENCES users (id),
    event_id      TEXT NOT NULL,
    kind          TEXT NOT NULL,
    at            BIGINT NOT NULL, -- the device's time, unix ms
    received_at   BIGINT NOT NULL, -- the server's time, unix ms
    away_ms       BIGINT,
    displays      BIGINT,
    capabilities  TEXT,            -- JSON, for `capabilities`
    detail        TEXT,
    UNIQUE (evaluation_id, user_id, event_id)
);
CREATE INDEX integrity_events_by_student ON integrity_events (evaluation_id, user_id, seq);
