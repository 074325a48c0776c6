-- What the staff console needs: where an imported answer came from, and when each evaluation
-- changed phase (to judge imported answers by their edit time).

-- NULL for an answer saved by the student's own connection; otherwise a sentence saying where the
-- stored revision came from (an answers-export file imported by staff).
ALTER TABLE answers ADD COLUMN source TEXT;

-- Every phase an evaluation entered, and when. Before its first row an evaluation is a draft.
CREATE TABLE phase_history (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    evaluation_id TEXT NOT NULL REFERENCES evaluations (id),
    at            INTEGER NOT NULL,
    phase         TEXT NOT NULL CHECK (phase IN ('draft', 'in_progress', 'grading', 'finished'))
);
CREATE INDEX phase_history_by_evaluation ON phase_history (evaluation_id, at);

-- Phase changes made before this migration, from the audit log ("Phase changed from X to Y.").
INSERT INTO phase_history (evaluation_id, at, phase)
SELECT evaluation_id, at, rtrim(substr(detail, instr(detail, ' to ') + 4), '.')
FROM audit
WHERE kind = 'phase_changed'
  AND rtrim(substr(detail, instr(detail, ' to ') + 4), '.') IN ('draft', 'in_progress', 'grading', 'finished')
ORDER BY id;
