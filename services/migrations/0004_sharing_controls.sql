-- Sharing controls: a default precision for friends without a setting of their own, and a
-- setting per friend (exact, approximate or hidden), optionally until a time.
ALTER TABLE sharing
    ADD COLUMN precision TEXT NOT NULL DEFAULT 'exact'
        CHECK (precision IN ('exact', 'approximate'));

-- What `user_id` lets `friend_id` see. Removed with the friendship; an expired row (until_ms
-- passed) no longer applies and is deleted by a periodic cleanup.
CREATE TABLE friend_sharing (
    user_id BIGINT NOT NULL,
    friend_id BIGINT NOT NULL,
    precision TEXT NOT NULL CHECK (precision IN ('exact', 'approximate', 'hidden')),
    until_ms BIGINT,
    PRIMARY KEY (user_id, friend_id)
);
