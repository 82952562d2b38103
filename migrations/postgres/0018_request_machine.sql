-- A consensus request about one machine's part in a target (`withdraw`: an AbuseIPDB key cleared
-- its reports of an address): the machine, and the highest id among the signals deleted with it
-- (later signals of that machine about the target still count). NULL for requests about the
-- target as a whole.
ALTER TABLE consensus_requests ADD COLUMN machine_id BIGINT;
ALTER TABLE consensus_requests ADD COLUMN up_to_signal BIGINT;
