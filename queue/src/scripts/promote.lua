-- promote: scheduled jobs that are due join the tail of `waiting`, in the order they fell due
-- (jobs due at the same millisecond in the order they were pushed), as items (ID|0[|MAX]), at
-- most ARGV[2] of them per call, so that a hundred thousand jobs due at once never hold Redis
-- for long; requests stored meanwhile are served from them in the same call, as push serves
-- them (unless the queue is paused). Run by every manager: each job is moved by exactly one
-- call, whichever manager makes it. A member that is not an item (written past the scripts)
-- joins the queue as it is, and the worker it meets buries it as poison.
-- KEYS[1] meta  KEYS[2] scheduled  KEYS[3] waiting  KEYS[4] requests  KEYS[5] jobs
-- KEYS[6] leases  KEYS[7] workers  KEYS[8] stats
-- ARGV[1] the caller's protocol version  ARGV[2] the most jobs to move
-- Returns {how many were moved, ms until the next scheduled job is due (-1: none is)}; as
-- many moved as asked means "call again".
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL, SQUE_FEATURE.
local opened = open_call(KEYS[1], ARGV[1])
local now = now_ms()
local limit = tonumber(ARGV[2])
-- Members are items whose id has 20 digits: Redis orders equal scores by member, so jobs due
-- at the same millisecond come out in the order they were pushed, across calls too.
local members = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
local moved = #members
if moved > 0 then
  local items = {}
  for i, member in ipairs(members) do
    items[i] = string.match(member, '^0*(%d.*)$') or member
  end
  redis.call('ZREM', KEYS[2], unpack(members))
  -- With priorities, each joins its own level's list.
  if opened.uses and opened.uses.priority then
    since_1_2().append(key_base(KEYS[1]), items)
  else
    redis.call('RPUSH', KEYS[3], unpack(items))
  end
  if not opened.paused and redis.call('LLEN', KEYS[4]) > 0 then
    local srv = server()
    local s = open_call(KEYS[1], opened, 'lease', 'inbox_ttl', 'max_attempts', 'max_job_bytes')
    srv.dispatch_stored(srv.serving(key_base(KEYS[1]), s, now),
                        {waiting = KEYS[3], requests = KEYS[4], workers = KEYS[7], stats = KEYS[8]},
                        moved, now)
    if redis.call('LLEN', KEYS[4]) > 0 and
        (s.uses and s.uses.priority and since_1_2().count_waiting(key_base(KEYS[1])) or redis.call('LLEN', KEYS[3])) > 0 then
      redis.call('SPUBLISH', key_base(KEYS[1]) .. 'wake', 'promoted')
    end
  end
end
local next_due = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]
return {moved, next_due and math.max(tonumber(next_due) - now, 0) or -1}
