-- Nearby friends: mutual friendships by consent, sharing ("ghost mode") and location history.
-- User ids are unsigned 64-bit integers stored as BIGINT with the same bit pattern (ids at or
-- above 2^63 read back negative in SQL; the service converts both ways).

-- One row per direction, so the friends of a user are one primary-key range.
CREATE TABLE friendships (
    user_id BIGINT NOT NULL,
    friend_id BIGINT NOT NULL,
    since TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, friend_id),
    CHECK (user_id <> friend_id)
);

CREATE TABLE friend_requests (
    from_id BIGINT NOT NULL,
    to_id BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (from_id, to_id),
    CHECK (from_id <> to_id)
);
CREATE INDEX friend_requests_to ON friend_requests (to_id);

-- Absent means the default: sharing on.
CREATE TABLE sharing (
    user_id BIGINT PRIMARY KEY,
    enabled BOOLEAN NOT NULL,
    -- Unix milliseconds at which `enabled` flips back; NULL for until changed.
    until_ms BIGINT
);

-- Append-only, written in batches by the gateway.
CREATE TABLE location_history (
    user_id BIGINT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    location GEOGRAPHY(POINT, 4326) NOT NULL
);
CREATE INDEX location_history_user_time ON location_history (user_id, recorded_at);
