-- Who may read an operator-managed list: every machine (public), the machines subscribed to it
-- (subscribers, the default, also for lists that existed before), or nobody but the operator.
ALTER TABLE custom_lists ADD COLUMN visibility TEXT NOT NULL DEFAULT 'subscribers'
    CHECK (visibility IN ('public', 'subscribers', 'operator'));
