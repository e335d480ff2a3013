-- Tasks created by the API and processed by the worker.
-- status moves pending -> processing -> completed; a worker that dies while
-- processing leaves the row 'processing' and the claim is taken over once
-- claimed_at is older than the worker's lease (its Lambda timeout).
CREATE TABLE tasks (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    payload     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status      text        NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'processing', 'completed')),
    result      jsonb,
    error       text,
    attempts    integer     NOT NULL DEFAULT 0,
    claim_token uuid,
    claimed_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Keyset pagination walks (created_at, id) newest first, optionally per status.
CREATE INDEX tasks_created_idx ON tasks (created_at DESC, id DESC);
CREATE INDEX tasks_status_created_idx ON tasks (status, created_at DESC, id DESC);
