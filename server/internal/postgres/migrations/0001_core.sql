-- 0001: registry, products, customers, accounts, the double-entry ledger,
-- card orders and their payments, payment orders and the terminal keys.
-- The database enforces what must never break: unique terminal keys,
-- non-negative customer balances, balanced ledger transactions, and a ledger
-- that is only ever appended to.

CREATE TABLE sellers (
    seller_id  text PRIMARY KEY CHECK (length(seller_id) BETWEEN 1 AND 32),
    name       text NOT NULL DEFAULT '',
    enabled    boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE stores (
    seller_id  text NOT NULL REFERENCES sellers,
    store_id   text NOT NULL CHECK (length(store_id) BETWEEN 1 AND 32),
    name       text NOT NULL DEFAULT '',
    enabled    boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (seller_id, store_id)
);

CREATE TABLE terminals (
    terminal_id text PRIMARY KEY CHECK (length(terminal_id) BETWEEN 1 AND 32),
    seller_id   text NOT NULL,
    store_id    text NOT NULL,
    enabled     boolean NOT NULL DEFAULT true,
    tpk_sealed  bytea,            -- the PIN key, sealed under the master key
    tpk_kcv     text NOT NULL DEFAULT '',
    legacy_des  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (seller_id, store_id) REFERENCES stores
);

CREATE TABLE products (
    product_id   text PRIMARY KEY CHECK (product_id ~ '^[0-9]{4}$' AND product_id <> '9999'),
    name         text NOT NULL,
    short_name   text NOT NULL,
    price        bigint NOT NULL CHECK (price > 0),
    face_value   bigint NOT NULL CHECK (face_value >= price),
    kind         text NOT NULL CHECK (kind IN ('discount', 'installment')),
    installments integer NOT NULL DEFAULT 1 CHECK (installments >= 1),
    on_sale      boolean NOT NULL DEFAULT true,
    remark       text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE customers (
    customer_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mobile      text NOT NULL UNIQUE CHECK (mobile ~ '^1[0-9]{10}$'),
    id_number   text NOT NULL CHECK (id_number ~ '^[0-9]{17}[0-9X]$'),
    pw_hash     bytea,            -- salt || HMAC; NULL: no password set
    pw_failures integer NOT NULL DEFAULT 0 CHECK (pw_failures >= 0),
    pw_locked   boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- System accounts (kind 'system') take the other side of every movement; their
-- balance is the sum of their postings, computed when asked, so that no pay
-- waits on a hot row. Customer accounts keep a balance that the postings
-- trigger moves and the CHECK keeps non-negative.
CREATE TABLE accounts (
    account_id   text PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('cash', 'card', 'system')),
    customer_id  bigint REFERENCES customers,
    product_id   text REFERENCES products,
    status       text NOT NULL CHECK (status IN ('pending', 'active', 'frozen', 'closed')),
    balance      bigint NOT NULL DEFAULT 0,
    activated_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT balance_non_negative CHECK (kind = 'system' OR balance >= 0),
    CHECK (kind = 'system' OR account_id ~ '^[0-9]{16}$'),
    CHECK ((kind = 'system') = (customer_id IS NULL)),
    CHECK ((kind = 'card') = (product_id IS NOT NULL))
) WITH (fillfactor = 80); -- room on the page keeps balance updates HOT (no index writes)
CREATE UNIQUE INDEX accounts_one_cash ON accounts (customer_id) WHERE kind = 'cash';
CREATE INDEX accounts_by_customer ON accounts (customer_id, kind, activated_at);

INSERT INTO accounts (account_id, kind, status) VALUES
    ('SYS-CARD-SALES', 'system', 'active'),        -- card prices owed to us by the POSP
    ('SYS-DISCOUNT', 'system', 'active'),          -- face value above price (折扣)
    ('SYS-INSTALLMENT', 'system', 'active'),       -- installment value not yet released
    ('SYS-MERCHANT-PAYABLE', 'system', 'active'),  -- spending owed to merchants
    ('SYS-TOPUP', 'system', 'active');             -- cash top-ups received

CREATE SEQUENCE account_seq;
CREATE SEQUENCE order_seq;

CREATE TABLE ledger_txns (
    txn_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text NOT NULL,     -- activate, release, repeal, pay, cancel, undo, topup
    order_id   text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- postings.account_id has no foreign key on purpose: a foreign key would
-- share-lock the referenced row, and every pay posts to SYS-MERCHANT-PAYABLE,
-- so all concurrent pays would pile multixact locks on that one row. The same
-- guarantee comes cheaper: a system leg must name one of the system accounts
-- above (CHECK), and a customer leg must move an existing customer account
-- (the trigger below raises when its UPDATE finds none).
CREATE TABLE postings (
    txn_id     bigint NOT NULL REFERENCES ledger_txns,
    account_id text NOT NULL CHECK (account_id ~ '^[0-9]{16}$' OR account_id IN
        ('SYS-CARD-SALES', 'SYS-DISCOUNT', 'SYS-INSTALLMENT', 'SYS-MERCHANT-PAYABLE', 'SYS-TOPUP')),
    amount     bigint NOT NULL CHECK (amount <> 0),
    PRIMARY KEY (txn_id, account_id)
);
-- Statements are read per customer account; the system accounts' legs stay
-- out of this index, or every pay would insert into the same hot leaf page
-- (SYS-MERCHANT-PAYABLE, newest txn) and wait for the others.
CREATE INDEX postings_by_account ON postings (account_id, txn_id) WHERE account_id NOT LIKE 'SYS-%';

-- A posting moves its customer account's balance in the same statement; the
-- balance CHECK then refuses an overdraft, whatever the caller did.
CREATE FUNCTION postings_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts SET balance = balance + NEW.amount
     WHERE account_id = NEW.account_id AND kind <> 'system';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'posting to unknown account %', NEW.account_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER postings_apply AFTER INSERT ON postings
    FOR EACH ROW WHEN (NEW.account_id NOT LIKE 'SYS-%') EXECUTE FUNCTION postings_apply();

-- Every ledger transaction balances, checked when it commits.
CREATE FUNCTION postings_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE total numeric;
BEGIN
    SELECT sum(amount) INTO total FROM postings WHERE txn_id = NEW.txn_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % does not balance (%)', NEW.txn_id, total
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER postings_balanced AFTER INSERT ON postings
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION postings_balanced();

-- The ledger is append-only.
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only' USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_txns_append_only BEFORE UPDATE OR DELETE ON ledger_txns
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

-- A card order accumulates the open_card payments of one customer and product
-- until the price is reached (filling = true while it takes payments).
CREATE TABLE card_orders (
    order_id     text PRIMARY KEY CHECK (order_id ~ '^[0-9]{20}$'),
    customer_id  bigint NOT NULL REFERENCES customers,
    product_id   text NOT NULL REFERENCES products,
    account_id   text NOT NULL UNIQUE REFERENCES accounts,
    price        bigint NOT NULL CHECK (price > 0),
    face_value   bigint NOT NULL CHECK (face_value >= price),
    installments integer NOT NULL DEFAULT 1,
    released     integer NOT NULL DEFAULT 0,   -- installment parts credited
    paid         bigint NOT NULL DEFAULT 0 CHECK (paid >= 0 AND paid <= price),
    filling      boolean NOT NULL DEFAULT true,
    status       text NOT NULL CHECK (status IN ('pending', 'active', 'closed')),
    credited     boolean NOT NULL DEFAULT false, -- value is in the ledger
    referrer     text NOT NULL DEFAULT '',
    business_date date NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz
);
CREATE UNIQUE INDEX card_orders_one_filling ON card_orders (customer_id, product_id) WHERE filling;

CREATE TABLE card_payments (
    payment_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id          text NOT NULL REFERENCES card_orders,
    seller_id         text NOT NULL,
    store_id          text NOT NULL,
    terminal_id       text NOT NULL,
    batch_no          text NOT NULL,
    terminal_order_id text NOT NULL,
    operator_id       text NOT NULL DEFAULT '',
    pay_sum           bigint NOT NULL CHECK (pay_sum > 0),
    status            text NOT NULL CHECK (status IN ('paid', 'repealed')),
    source            text NOT NULL DEFAULT 'pos' CHECK (source IN ('pos', 'file')),
    business_date     date NOT NULL,
    settled           boolean NOT NULL DEFAULT false,
    trade_id          text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    repealed_at       timestamptz,
    UNIQUE (terminal_id, batch_no, terminal_order_id)
);
CREATE INDEX card_payments_by_order ON card_payments (order_id);
CREATE INDEX card_payments_by_date ON card_payments (business_date);

-- Payment orders: pays and their cancels.
CREATE TABLE pay_orders (
    order_id          text PRIMARY KEY CHECK (order_id ~ '^ud[0-9]{20}$'),
    kind              text NOT NULL CHECK (kind IN ('pay', 'cancel')),
    seller_id         text NOT NULL,
    store_id          text NOT NULL,
    terminal_id       text NOT NULL,
    batch_no          text NOT NULL,
    terminal_order_id text NOT NULL,
    operator_id       text NOT NULL DEFAULT '',
    consumer_id       text NOT NULL,
    account_id        text NOT NULL REFERENCES accounts,
    amount            bigint NOT NULL CHECK (amount > 0),
    balance_after     bigint NOT NULL,
    status            text NOT NULL CHECK (status IN ('success', 'cancelled', 'reversed')),
    original_order_id text REFERENCES pay_orders,
    product_name      text NOT NULL DEFAULT '',
    product_price     bigint NOT NULL DEFAULT 0,
    product_quantity  text NOT NULL DEFAULT '',
    remark            text NOT NULL DEFAULT '',
    business_date     date NOT NULL,
    pay_time          timestamptz NOT NULL,
    fingerprint       bytea,          -- pays: the request's, for repeats of its terminal key
    UNIQUE (kind, terminal_id, batch_no, terminal_order_id)
);
CREATE UNIQUE INDEX pay_orders_one_cancel ON pay_orders (original_order_id) WHERE kind = 'cancel';

-- Terminal keys (SPEC section 5): the first complete outcome of a terminal
-- transaction and the fingerprint of its request. state 'tombstone' is a
-- reversal that came before (or instead of) its pay; 'reversed' a pay that
-- was reversed afterwards. An approved pay keeps its outcome in its
-- pay_orders row (same unique key, and the fingerprint) and has a row here
-- only once it is reversed: the hot path writes one row, not two.
CREATE TABLE terminal_requests (
    kind              text NOT NULL CHECK (kind IN ('open_card', 'pay', 'pay_cancel')),
    terminal_id       text NOT NULL,
    batch_no          text NOT NULL,
    terminal_order_id text NOT NULL,
    fingerprint       bytea,
    state             text NOT NULL CHECK (state IN ('done', 'tombstone', 'reversed')),
    errcode           integer NOT NULL,
    errmsg            text NOT NULL DEFAULT '',
    answer            jsonb,
    undo_answer       jsonb,          -- pay keys: the answer of its reversal
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, terminal_id, batch_no, terminal_order_id)
);

CREATE TABLE topups (
    reference  text PRIMARY KEY CHECK (length(reference) BETWEEN 1 AND 64),
    account_id text NOT NULL REFERENCES accounts,
    amount     bigint NOT NULL CHECK (amount > 0),
    txn_id     bigint NOT NULL REFERENCES ledger_txns,
    created_at timestamptz NOT NULL DEFAULT now()
);
