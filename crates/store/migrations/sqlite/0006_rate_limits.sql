-- Rate limits (DESIGN.md section 14), shared by every instance on this database.
-- `rate_counts`: units (requests or tokens) admitted per limiter per 2-second slot; an
-- admission counts the last 31 slots (see tollgate_policy::rate). Slot -1 is each limiter's
-- lock row: grants lock it, so instances' blocks never sum past the limit.
CREATE TABLE rate_counts (
    limiter TEXT   NOT NULL,
    slot    BIGINT NOT NULL,
    units   BIGINT NOT NULL,
    PRIMARY KEY (limiter, slot)
);
-- `rate_concurrency`: request slots each instance holds against `max_concurrent_requests`;
-- a row past `expires_at` (its instance died) no longer counts.
CREATE TABLE rate_concurrency (
    limiter    TEXT   NOT NULL,
    instance   TEXT   NOT NULL,
    held       BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (limiter, instance)
);
