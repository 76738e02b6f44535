-- Surefoot schema 2 (PostgreSQL): who may use the API and the console.
-- Secrets are never stored: passwords as argon2 hashes, tokens and session ids as SHA-256.

CREATE TABLE users (
    username       TEXT COLLATE "C" PRIMARY KEY,
    password_hash  TEXT,                 -- argon2id, or NULL for users who sign in with OIDC only
    role           TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'reviewer', 'admin')),
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

-- Machine credentials. The secret is shown once at creation; only its hash is kept.
CREATE TABLE api_tokens (
    token_id      TEXT COLLATE "C" PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'reviewer', 'admin')),
    created_by    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ
);

-- Server-side console sessions: the cookie holds a random id, this table its hash.
CREATE TABLE web_sessions (
    session_hash   TEXT PRIMARY KEY,
    username       TEXT NOT NULL,
    role           TEXT NOT NULL,
    csrf_token     TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    last_seen_at   TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL  -- the absolute limit (idle expiry uses last_seen_at)
);
CREATE INDEX web_sessions_user ON web_sessions (username);
