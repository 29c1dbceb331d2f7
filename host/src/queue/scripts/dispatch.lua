-- dispatch: match waiting jobs with free requests, oldest with oldest, up to ARGV[1] pairs.
-- KEYS[1] waiting  KEYS[2] requests  KEYS[3] jobs  KEYS[4] leases  KEYS[5] workers  KEYS[6] stats
-- ARGV[1] max pairs  ARGV[2] lease ms  ARGV[3] default max attempts  ARGV[4] key prefix "p:{q}:"
-- ARGV[5] inbox ttl ms
-- Each pair: the job's attempt goes up by one, its lease (token "id|attempt|max") is scored by
-- its deadline on Redis's clock, and the entry {"r":request,"t":token,"d":data} goes to the
-- requesting worker's inbox. A request of a worker whose heartbeat ran out is dropped.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = now + tonumber(ARGV[2])
local alive = {}
local n = 0
while n < tonumber(ARGV[1]) do
  local item = redis.call('LPOP', KEYS[1])
  if not item then break end
  local id, attempt, max = string.match(item, '^([^|]+)|(%d+)|?(%d*)$')
  local data = id and redis.call('HGET', KEYS[3], id)
  if data then
    local req, worker, seq
    while true do
      req = redis.call('LPOP', KEYS[2])
      if not req then break end
      worker, seq = string.match(req, '^([^:]+):(.+)$')
      if worker then
        if alive[worker] == nil then
          local until_ms = redis.call('ZSCORE', KEYS[5], worker)
          alive[worker] = until_ms and tonumber(until_ms) > now or false
        end
        if alive[worker] then break end
      end
    end
    if not req then
      redis.call('LPUSH', KEYS[1], item)
      break
    end
    if max == '' then max = ARGV[3] end
    local token = id .. '|' .. (tonumber(attempt) + 1) .. '|' .. max
    redis.call('ZADD', KEYS[4], deadline, token)
    local inbox = ARGV[4] .. 'inbox:' .. worker
    redis.call('RPUSH', inbox, '{"r":"' .. seq .. '","t":"' .. token .. '","d":' .. data .. '}')
    redis.call('PEXPIRE', inbox, ARGV[5])
    n = n + 1
  end
end
if n > 0 then redis.call('HINCRBY', KEYS[6], 'dispatched', n) end
return n
