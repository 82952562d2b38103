-- The client network (IPv4 /24, IPv6 /64) a self-registered machine registered from, so the
-- daily cap of registrations per network holds across restarts and replicas.
ALTER TABLE machines ADD COLUMN registered_from TEXT;
CREATE INDEX machines_registered_from ON machines (registered_from, created_at) WHERE registered_from IS NOT NULL;
