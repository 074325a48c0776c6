-- Failed sign-ins, counted across every node for throttling (the contract's limits hold behind a
-- load balancer). Rows older than an hour are deleted as new failures arrive.
CREATE TABLE sign_in_failures (
    id       BIGSERIAL PRIMARY KEY,
    address  TEXT NOT NULL,
    username TEXT NOT NULL,
    at       BIGINT NOT NULL
);
CREATE INDEX sign_in_failures_by_address ON sign_in_failures (address, at);
CREATE INDEX sign_in_failures_by_username ON sign_in_failures (address, username, at);
CREATE INDEX sign_in_failures_by_time ON sign_in_failures (at);
