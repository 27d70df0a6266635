-- Four-eyes approval (maker-checker, SPEC section 7): money moved by hand —
-- exception resolutions that credit or refund (activate, refund_owed) and cash
-- top-ups above the configured amount — is first a proposal. A different
-- identity with the supervisor role approves it, and the approval executes the
-- action in the same transaction that marks the proposal approved; nothing
-- moves before. A pending proposal past expires_at can no longer be approved.
-- args: the action's non-secret arguments (JSON), executed as proposed.
CREATE TABLE proposals (
    proposal_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('resolve_exception', 'topup_cash')),
    target        text NOT NULL,
    args          jsonb NOT NULL,
    proposer      text NOT NULL,
    proposer_role text NOT NULL,
    state         text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved', 'rejected')),
    decider       text NOT NULL DEFAULT '',
    decider_role  text NOT NULL DEFAULT '',
    decision_note text NOT NULL DEFAULT '',
    result        text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    decided_at    timestamptz,
    CHECK ((state = 'pending') = (decided_at IS NULL)),
    -- The database, too, refuses a decision by the proposer.
    CHECK (state = 'pending' OR decider <> proposer)
);
CREATE INDEX proposals_state ON proposals (state, proposal_id);
CREATE INDEX proposals_target ON proposals (target);

-- The operations console's accounts (server console-user add). password_hash:
-- argon2id, in the PHC string form ($argon2id$v=19$m=…,t=…,p=…$salt$hash).
-- A run of failed sign-ins locks the account until locked_until.
CREATE TABLE console_users (
    name          text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,31}$'),
    role          text NOT NULL,
    password_hash text NOT NULL,
    failures      integer NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
