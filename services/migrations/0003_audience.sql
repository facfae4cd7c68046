-- The audience log: every change to who may see a user (a friendship made or ended, a sharing
-- setting) appends the users concerned, in the change's own transaction. Appends take a
-- transaction-scoped advisory lock first, so sequence numbers are handed out in commit order
-- and a reader that saw `seq` has seen every entry before it. Every gateway node reads the log
-- a few times a second: a change reaches every node even when the pub/sub message announcing
-- it is lost.
CREATE TABLE audience_log (
    seq BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Entries up to `upto` were trimmed: a reader whose cursor is below it missed some.
CREATE TABLE audience_log_trim (
    singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    upto BIGINT NOT NULL
);
INSERT INTO audience_log_trim (singleton, upto) VALUES (true, 0);

-- Pairs of the `--friends` seed file already applied (smaller id first): a pair is applied at
-- most once, so a friendship ended through the API is never re-created by a restart.
CREATE TABLE friend_seeds (
    user_a BIGINT NOT NULL,
    user_b BIGINT NOT NULL,
    PRIMARY KEY (user_a, user_b)
);

-- A database that already holds friendships was seeded (if at all) before pairs were
-- recorded: which seeded pairs its users have since ended is unknown. The first seeding after
-- this migration therefore records the file's pairs as applied without re-creating any (an
-- ended friendship must never come back); it deletes this marker.
CREATE TABLE friend_seeds_legacy (singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton));
INSERT INTO friend_seeds_legacy (singleton) SELECT true WHERE EXISTS (SELECT 1 FROM friendships);
