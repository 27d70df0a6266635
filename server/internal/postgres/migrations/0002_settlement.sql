-- 0002: the daily settlement (日切交割, SPEC section 6): batches and their
-- runs, the staged records of a run, the 交易ids applied, the activations it
-- made, the manual-handling queue and the installment releases. The database
-- enforces what must never happen twice: a 交易id applied, a payment
-- confirmed, an order counted as activated, an installment part released, an
-- exception filed.

-- A run is one submission of a file that got past the batch checks; a
-- forced re-run or a run after a crash is another run of the same date. Its
-- report is kept on the run, so that the same file again answers it.
CREATE TABLE settlement_runs (
    run_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    business_date date NOT NULL,
    file_name     text NOT NULL,
    sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    forced        boolean NOT NULL DEFAULT false,
    status        text NOT NULL CHECK (status IN ('staging', 'applying', 'settled', 'failed')),
    records       bigint NOT NULL DEFAULT 0,   -- lines of the file: records and bad lines
    total_fen     bigint NOT NULL DEFAULT 0,   -- sum of the records' amounts
    matched       bigint NOT NULL DEFAULT 0,
    opened        bigint NOT NULL DEFAULT 0,
    merged        bigint NOT NULL DEFAULT 0,
    activated     bigint NOT NULL DEFAULT 0,
    exceptions    jsonb NOT NULL DEFAULT '[]', -- [{type, count, amount}]
    started_at    timestamptz NOT NULL,
    settled_at    timestamptz
);
CREATE INDEX settlement_runs_by_date ON settlement_runs (business_date, run_id);

-- One batch per business date. run_id is the run whose report stands, or
-- that is running; a date whose file never came is file_missing.
CREATE TABLE settlement_batches (
    business_date date PRIMARY KEY,
    status        text NOT NULL CHECK (status IN ('running', 'settled', 'file_missing')),
    run_id        bigint REFERENCES settlement_runs,
    detail        text NOT NULL DEFAULT '',
    updated_at    timestamptz NOT NULL,
    CHECK (status = 'file_missing' OR run_id IS NOT NULL)
);

-- The records of a run, streamed in chunk by chunk with COPY so that the
-- server's memory is bounded by a chunk and matching is done set-based.
-- Unlogged: it is transient, rebuilt by the next submission if the server
-- crashes; rows are deleted when their run ends.
CREATE UNLOGGED TABLE settlement_staging (
    run_id            bigint NOT NULL,
    line_no           bigint NOT NULL,
    bad               boolean NOT NULL,           -- a line the parser could not read
    dup               boolean NOT NULL DEFAULT false, -- an earlier line has the same trade_id
    trade_id          text NOT NULL,
    amount            bigint NOT NULL,
    seller_id         text NOT NULL,
    terminal_id       text NOT NULL,
    batch_no          text NOT NULL,
    terminal_order_id text NOT NULL,
    id_number         text NOT NULL,
    mobile            text NOT NULL,
    referrer          text NOT NULL,
    product_id        text NOT NULL,
    card_no           text NOT NULL,
    reference_no      text NOT NULL,
    trade_date        text NOT NULL,
    trade_time        text NOT NULL,
    reason            text NOT NULL,              -- bad lines: why
    line_text         text NOT NULL,              -- bad lines: the masked text
    PRIMARY KEY (run_id, line_no)
);

-- Every 交易id applied, once ever (SPEC section 6: no record applied twice,
-- forced or not), and every payment confirmed by at most one of them.
CREATE TABLE settlement_trades (
    trade_id      text PRIMARY KEY,
    business_date date NOT NULL,
    run_id        bigint NOT NULL REFERENCES settlement_runs,
    line_no       bigint NOT NULL,
    outcome       text NOT NULL CHECK (outcome IN ('matched', 'opened')),
    payment_id    bigint NOT NULL UNIQUE REFERENCES card_payments,
    order_id      text NOT NULL REFERENCES card_orders,
    amount        bigint NOT NULL CHECK (amount > 0),
    applied_at    timestamptz NOT NULL
);
CREATE INDEX settlement_trades_by_date ON settlement_trades (business_date, order_id);

-- Orders whose confirmed payments reached the price, each counted once:
-- credited by settlement, verified (already credited under the immediate
-- policy), or activated by an operator resolving a queue item (manual).
CREATE TABLE settlement_activations (
    order_id      text PRIMARY KEY REFERENCES card_orders,
    business_date date NOT NULL,
    run_id        bigint REFERENCES settlement_runs,
    exception_id  bigint,
    payments      integer NOT NULL,
    credited      boolean NOT NULL,   -- false: it was already credited
    manual        boolean NOT NULL DEFAULT false,
    activated_at  timestamptz NOT NULL
);
CREATE INDEX settlement_activations_by_date ON settlement_activations (business_date);

-- The manual-handling queue (人工处理). dedupe names the problem, so that a
-- re-run or a second RunDaily never files it twice. Resolving is the
-- conditional transition open -> resolved; superseded marks items that a
-- later run of the same date cleared (their record has since been applied).
CREATE TABLE settlement_exceptions (
    exception_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type              text NOT NULL CHECK (type IN ('amount_mismatch', 'not_openable', 'duplicate',
                          'missing_from_file', 'overpaid', 'incomplete_after_window', 'bad_line')),
    business_date     date NOT NULL,
    run_id            bigint REFERENCES settlement_runs, -- NULL: filed by RunDaily
    dedupe            text NOT NULL,
    line_no           bigint NOT NULL DEFAULT 0,
    trade_id          text NOT NULL DEFAULT '',
    order_id          text NOT NULL DEFAULT '',
    payment_id        bigint REFERENCES card_payments,
    terminal_id       text NOT NULL DEFAULT '',
    batch_no          text NOT NULL DEFAULT '',
    terminal_order_id text NOT NULL DEFAULT '',
    amount            bigint NOT NULL DEFAULT 0,
    expected          bigint NOT NULL DEFAULT 0,
    detail            text NOT NULL DEFAULT '',
    state             text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved')),
    action            text CHECK (action IN ('activate', 'refund_owed', 'ignore', 'link_order')),
    operator          text NOT NULL DEFAULT '',
    note              text NOT NULL DEFAULT '',
    linked_order_id   text NOT NULL DEFAULT '',
    superseded        boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL,
    resolved_at       timestamptz,
    CHECK ((state = 'resolved') = (action IS NOT NULL AND resolved_at IS NOT NULL AND operator <> '')),
    UNIQUE (business_date, dedupe)
);
CREATE INDEX settlement_exceptions_by_state ON settlement_exceptions (state, business_date, exception_id);

-- Installment parts 2..N, each released once per card and part (SPEC
-- section 4, 分期卡); part 1 is credited by the activation itself.
CREATE TABLE installment_releases (
    order_id    text NOT NULL REFERENCES card_orders,
    part        integer NOT NULL CHECK (part >= 2),
    due_date    date NOT NULL,
    amount      bigint NOT NULL CHECK (amount >= 0),
    txn_id      bigint REFERENCES ledger_txns,    -- NULL only for a zero part
    released_at timestamptz NOT NULL,
    PRIMARY KEY (order_id, part)
);

-- RunDaily's scans: installment cards still releasing, and pending orders
-- by age. Partial indexes keep them to the few rows that qualify.
CREATE INDEX card_orders_releasing ON card_orders (order_id)
    WHERE status = 'active' AND credited AND released < installments;
CREATE INDEX card_orders_pending_by_date ON card_orders (business_date) WHERE status = 'pending';
