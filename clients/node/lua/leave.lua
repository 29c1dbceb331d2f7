-- leave: a worker leaves the queue cleanly. Its open requests are withdrawn, the jobs in its
-- inbox (handed to it, not yet taken) and the jobs it names (taken, never started) go back to
-- the head of the queue with their attempt uncounted, and its heartbeat is dropped, so that
-- no dispatcher serves it again and nothing waits for its leases to run out; what it said of
-- itself ("P:{Q}:worker:W", "P:{Q}:held:W", its entry in "P:{Q}:protocols") goes with it.
-- KEYS[1] meta  KEYS[2] requests  KEYS[3] workers  KEYS[4] leases  KEYS[5] waiting
-- KEYS[6] the worker's inbox ("P:{Q}:inbox:W")
-- ARGV[1] the caller's protocol version  ARGV[2] worker id W  ARGV[3] number of request
-- entries n, then the n entries "W:S", then the tokens of jobs to give back.
-- Returns {requests withdrawn, jobs given back}.
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL.
local s = open_call(KEYS[1], ARGV[1])
local n = tonumber(ARGV[3])
local withdrawn = 0
for i = 4, 3 + n do
  withdrawn = withdrawn + redis.call('LREM', KEYS[2], 1, ARGV[i])
end
local tokens = {}
for i = 4 + n, #ARGV do tokens[#tokens + 1] = ARGV[i] end
-- What the inbox holds: deliveries, whose token is the second field of the fixed prefix.
local entries = redis.call('LRANGE', KEYS[6], 0, -1)
for _, entry in ipairs(entries) do
  local token = string.match(entry, '^{"r":"%d+","t":"([^"]+)"')
  if token then tokens[#tokens + 1] = token end
end
redis.call('DEL', KEYS[6])
local released = 0
-- Backwards, so that jobs pushed to the head one by one keep their order. A token that does
-- not parse is not touched: a lease under that name runs out and the reaper buries it, with
-- a reason, rather than this script dropping it.
for i = #tokens, 1, -1 do
  local id, attempt, max = parse_token(tokens[i])
  if id and redis.call('ZREM', KEYS[4], tokens[i]) == 1 then
    -- With priorities, to the head of its own level's list.
    local list = s.uses and s.uses.priority and since_1_2().list_of(key_base(KEYS[1]), id) or KEYS[5]
    redis.call('LPUSH', list, id .. '|' .. (attempt - 1) .. '|' .. max)
    released = released + 1
  end
end
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('DEL', key_base(KEYS[1]) .. 'worker:' .. ARGV[2], key_base(KEYS[1]) .. 'held:' .. ARGV[2])
redis.call('HDEL', key_base(KEYS[1]) .. 'protocols', ARGV[2])
if released > 0 and redis.call('LLEN', KEYS[2]) > 0 then
  redis.call('SPUBLISH', key_base(KEYS[1]) .. 'wake', 'released')
end
return {withdrawn, released}
