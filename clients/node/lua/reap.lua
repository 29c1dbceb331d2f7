-- reap: the queue's housekeeping, run by every dispatcher on a short timer.
--  1. leases past their deadline: the job goes back to the head of the queue (the attempt
--     counts), or to the dead list when it has used up its attempts (a lease whose token
--     does not parse is poison);
--  2. delayed retries that are due join the tail of the queue;
--  3. results older than the queue's result_ttl, or beyond its result_max, are dropped, and so
--     are the records of jobs cancelled longer ago than result_ttl;
--  4. workers whose heartbeat ran out are forgotten (with what they said of themselves,
--     "P:{Q}:worker:W", "P:{Q}:held:W" and their entry in "P:{Q}:protocols"), and unique
--     keys whose window after completion has passed are freed;
--  5. the dead list is kept within dead_max and dead_ttl, and entries of the dead list of
--     older versions (the list `dead`) are moved into it;
--  6. push records (`pushed`) older than the one of the job at the head of `waiting` are
--     dropped (all but the newest when nothing waits): the head is the oldest waiting job,
--     the one whose age is read. With priorities, each level's records by its own head.
-- With priorities (feature `priority`), a job that comes back joins its own level's list.
-- KEYS[1] meta  KEYS[2] leases  KEYS[3] waiting  KEYS[4] delayed  KEYS[5] dead_at
-- KEYS[6] errors  KEYS[7] stats  KEYS[8] results  KEYS[9] results_at  KEYS[10] workers
-- KEYS[11] requests  KEYS[12] jobs  KEYS[13] dead (the list of versions before the sorted set)
-- ARGV[1] the caller's protocol version  ARGV[2] batch limit
-- Returns {expired, promoted, dropped results (or push records, or unique keys freed,
-- whichever more), dead entries trimmed or moved, the queue's lease ms}; a full batch of any
-- means "call again".
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL.
local s = open_call(KEYS[1], ARGV[1], 'lease', 'result_ttl', 'result_max', 'dead_max', 'dead_ttl')
local now = now_ms()
local limit = tonumber(ARGV[2])
local k = {meta = KEYS[1], dead = KEYS[5], errors = KEYS[6], jobs = KEYS[12], stats = KEYS[7]}
local base = key_base(KEYS[1])
-- With priorities, a job comes back to its own level's list.
local priorities = s.uses and s.uses.priority and since_1_2()

local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
-- Walk backwards so that, pushed one by one to the head, they keep their order.
for i = #expired, 1, -1 do
  local token = expired[i]
  redis.call('ZREM', KEYS[2], token)
  local id, attempt, max = parse_token(token)
  if not id then
    graveyard().bury_poison(k, s, token, token, 'lease token ' .. string.format('%q', string.sub(token, 1, 80)) .. ' is not ID|ATTEMPT|MAX', now)
  else
    local message = 'lease expired on attempt ' .. attempt .. ' (the worker died, froze or lost Redis)'
    if attempt >= max then
      graveyard().bury(k, s, token, id, 'lease_expired', message, now)
    else
      redis.call('HSET', KEYS[6], id, graveyard().record('lease_expired', message, now, token))
      redis.call('LPUSH', priorities and priorities.list_of(base, id) or KEYS[3], token)
    end
  end
end
if #expired > 0 then redis.call('HINCRBY', KEYS[7], 'expired', #expired) end

local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, limit)
for _, token in ipairs(due) do
  redis.call('ZREM', KEYS[4], token)
  redis.call('RPUSH', priorities and priorities.list_of(base, parse_token(token) or '') or KEYS[3], token)
end

local dropped = redis.call('ZRANGEBYSCORE', KEYS[9], '-inf', now - s.result_ttl, 'LIMIT', 0, limit)
local over = redis.call('ZCARD', KEYS[9]) - #dropped - s.result_max
if over > 0 then
  local oldest = redis.call('ZRANGE', KEYS[9], #dropped, #dropped + math.min(over, limit) - 1)
  for _, id in ipairs(oldest) do dropped[#dropped + 1] = id end
end
for _, id in ipairs(dropped) do
  redis.call('HDEL', KEYS[8], id)
  redis.call('ZREM', KEYS[9], id)
end

local gone = redis.call('ZRANGEBYSCORE', KEYS[10], '-inf', now, 'LIMIT', 0, limit)
if #gone > 0 then
  redis.call('ZREM', KEYS[10], unpack(gone))
  for _, w in ipairs(gone) do redis.call('DEL', base .. 'worker:' .. w, base .. 'held:' .. w) end
  redis.call('HDEL', base .. 'protocols', unpack(gone))
end
-- Cancelled jobs are remembered as long as results are kept.
redis.call('ZREMRANGEBYSCORE', key_base(KEYS[1]) .. 'cancelled', '-inf', now - s.result_ttl)

-- Unique keys whose window after their job completed has passed are free again.
local unique = since_1_1().unique
local freed = unique.expire(unique.keys(key_base(KEYS[1])), now, limit)

-- The old dead list, oldest first, scored by the time its error says (now if it says none).
local moved = redis.call('RPOP', KEYS[13], limit) or {}
for _, token in ipairs(moved) do
  local at = now
  local record = redis.call('HGET', KEYS[6], parse_token(token) or token)
  if record then
    local ok, e = pcall(cjson.decode, record)
    if ok and type(e) == 'table' and tonumber(e.at) then at = tonumber(e.at) end
  end
  redis.call('ZADD', KEYS[5], at, token)
end
local trimmed = graveyard().trim(k, s, now, limit)

-- Push records before the one of the job at the head: no waiting job needs them. (A job
-- that comes back to the head later, its lease expired or its backoff over, has no record
-- then: its age is unknown.) A head that is not a job item keeps them all. With priorities,
-- each level's records (`records`) by the head of its own list.
local function trim_records(list, records)
  local head = redis.call('LRANGE', list, 0, 0)[1]
  local keep
  if not head then
    keep = redis.call('ZRANGE', records, -1, -1, 'WITHSCORES')[2]
  else
    local head_id = parse_item(head)
    if head_id then
      keep = redis.call('ZRANGE', records, head_id, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1, 'WITHSCORES')[2]
    end
  end
  if not keep then return 0 end
  local old = redis.call('ZRANGE', records, '-inf', '(' .. keep, 'BYSCORE', 'LIMIT', 0, limit)
  if #old > 0 then redis.call('ZREM', records, unpack(old)) end
  return #old
end
local old = 0
if priorities then
  for i, list in ipairs(priorities.lists(base)) do
    old = math.max(old, trim_records(list, priorities.records(base, 10 - i)))
  end
else
  old = trim_records(KEYS[3], base .. 'pushed')
end

if #expired + #due > 0 and redis.call('LLEN', KEYS[11]) > 0 then
  redis.call('SPUBLISH', key_base(KEYS[1]) .. 'wake', 'requeued')
end
-- A full batch of push records dropped, or of unique keys freed, counts as a full batch of
-- results: call again.
return {#expired, #due, math.max(#dropped, old, freed), math.max(#moved, trimmed), s.lease}
