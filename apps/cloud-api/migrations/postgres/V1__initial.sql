-- One schema, two dialects: keep this file and ../sqlite/V1__initial.sql
-- describing the same tables, columns and constraints.

CREATE TABLE users (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Only SHA-256 of a token's secret is kept; the plaintext is shown once.
CREATE TABLE api_tokens (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_tokens_user_id ON api_tokens (user_id);

CREATE TABLE organisations (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
    org_id bigint NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('admin', 'member')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user_id ON memberships (user_id);

-- user_id NULL: the organisation's shared scope. Otherwise a member's own
-- scope; the composite foreign key (not checked when user_id is NULL) makes
-- it exist only while the membership does, so removing a member removes
-- their scope and, by cascade, its sources.
CREATE TABLE scopes (
    id bigserial PRIMARY KEY,
    org_id bigint NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    user_id bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, user_id),
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);
-- UNIQUE treats NULLs as distinct, so the one-org-scope rule needs its own index.
CREATE UNIQUE INDEX scopes_one_org_scope ON scopes (org_id) WHERE user_id IS NULL;
CREATE INDEX scopes_user_id ON scopes (user_id);

CREATE TABLE sources (
    id bigserial PRIMARY KEY,
    scope_id bigint NOT NULL REFERENCES scopes (id) ON DELETE CASCADE,
    name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('openapi', 'mcp', 'graphql')),
    url text NOT NULL,
    config jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (scope_id, name)
);
