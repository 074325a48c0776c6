-- Accommodations: the proctoring settings one student is exempt from in one evaluation (a screen
-- reader needs the clipboard, a magnifier a second display), with who granted it and why. No row:
-- no accommodation; removing one deletes its row (the audit log keeps the history).
CREATE TABLE accommodations (
    evaluation_id TEXT NOT NULL REFERENCES evaluations (id),
    user_id       TEXT NOT NULL REFERENCES users (id),
    exempt        TEXT NOT NULL,    -- JSON array of setting names, never empty
    reason        TEXT NOT NULL,
    actor         TEXT NOT NULL,    -- the username of who set it
    updated_at    BIGINT NOT NULL,  -- unix ms
    PRIMARY KEY (evaluation_id, user_id)
);
