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
local alive = {}
local n = 0
while n < tonumber(ARGV[1]) and redis.call('LLEN', KEYS[1]) > 0 do
  -- The oldest request of a live worker.
  local req = redis.call('LPOP', KEYS[2])
  if not req then break end
  local worker, seq = string.match(req, '^([^:]+):(.+)$')
  if worker then
    if alive[worker] == nil then
      local until_ms = redis.call('ZSCORE', KEYS[5], worker)
      alive[worker] = until_ms and tonumber(until_ms) > now or false
    end
    if alive[worker] then
      if serve(q, KEYS[1], {{worker, seq}}) == 1 then
        n = n + 1
      else
        -- No job left after all (purged data): the request keeps its place.
        redis.call('LPUSH', KEYS[2], req)
        break
      end
    end
  end
end
if n > 0 then redis.call('HINCRBY', KEYS[6], 'dispatched', n) end
return n
