-- dispatch: match waiting jobs with stored requests, oldest with oldest, up to ARGV[1] pairs.
-- A request of a worker whose heartbeat ran out is dropped.
-- KEYS[1] waiting  KEYS[2] requests  KEYS[3] jobs  KEYS[4] leases  KEYS[5] workers  KEYS[6] stats
-- KEYS[7] meta
-- ARGV[1] max pairs  ARGV[2] lease ms  ARGV[3] max attempts if the queue has none set
-- ARGV[4] key prefix "p:{q}:"
-- ARGV[5] inbox ttl ms
local now = now_ms()
local q = {jobs = KEYS[3], leases = KEYS[4], base = ARGV[4], deadline = now + tonumber(ARGV[2]),
           default_max = redis.call('HGET', KEYS[7], 'max_attempts') or ARGV[3], inbox_ttl = ARGV[5]}
return dispatch_stored(q, {waiting = KEYS[1], requests = KEYS[2], workers = KEYS[5], stats = KEYS[6]},
                       tonumber(ARGV[1]), now)
