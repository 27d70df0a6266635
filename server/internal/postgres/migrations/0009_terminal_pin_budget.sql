-- The wrong-password budget per terminal across customers (SPEC section 7):
-- the wrong PINs counted in the window that began at pin_window_start, and
-- the end of the terminal's suspension. Kept on the terminal row, read with it
-- by every password-bearing request, so that all server replicas share it.
ALTER TABLE terminals
    ADD COLUMN pin_failures          integer NOT NULL DEFAULT 0 CHECK (pin_failures >= 0),
    ADD COLUMN pin_window_start      timestamptz,
    ADD COLUMN pin_suspended_until   timestamptz;
