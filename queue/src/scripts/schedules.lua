-- schedules: add, replace or remove one of a queue's schedules (a job pushed on a cron
-- pattern; the pattern is read by the managers, never here). A schedule is its definition in
-- `schedules` (name → JSON: cron, tz, data, max_attempts, priority) and its next tick in
-- `schedule_due` (name → ms, Redis's clock). The first schedule records the feature
-- (`requires` gains `cron`), so that a host that would never push its ticks refuses the
-- queue instead; the first whose jobs have a priority other than normal records
-- `cron_priority`, so that a host that would push them at the normal one refuses it too.
-- KEYS[1] meta  KEYS[2] schedules  KEYS[3] schedule_due
-- ARGV[1] the caller's protocol version  ARGV[2] "set" or "remove"  ARGV[3] the name;
-- for "set", ARGV[4] the definition (JSON), ARGV[5] its first tick (ms since the epoch) and
-- ARGV[6] the priority of its jobs (0 to 9; "" or absent: 5, the normal one), which the
-- definition holds too.
-- Returns 1 when a schedule was added or removed, 0 when "set" replaced one or "remove"
-- found none. A "set" publishes `scheduled` on the wake channel, so that the managers' next
-- wait takes the new tick into account.
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL, SQUE_FEATURE; SQUE_INVALID for another action, a
-- first tick that is not a number or a priority that is not 0 to 9.
local s = open_call(KEYS[1], ARGV[1])
local name = ARGV[3]
if ARGV[2] == 'set' then
  if not string.match(ARGV[5] or '', '^%d+$') or #ARGV[5] > 15 then
    return redis.error_reply('SQUE_INVALID schedule ' .. string.format('%q', name) .. ': first tick ' ..
      string.format('%q', string.sub(ARGV[5] or '', 1, 20)) .. ' is not ms since the epoch')
  end
  local level = ARGV[6] or ''
  if level ~= '' and not string.match(level, '^[0-9]$') then
    return redis.error_reply('SQUE_INVALID schedule ' .. string.format('%q', name) .. ': priority ' ..
      string.format('%q', string.sub(level, 1, 20)) .. ' is not 0 to 9')
  end
  since_1_1().require_feature(KEYS[1], s.requires, 'cron')
  if level ~= '' and level ~= '5' then
    -- (Read again: `cron` may have been added just now.)
    since_1_1().require_feature(KEYS[1], redis.call('HGET', KEYS[1], 'requires'), 'cron_priority')
  end
  local added = redis.call('HSET', KEYS[2], name, ARGV[4])
  redis.call('ZADD', KEYS[3], ARGV[5], name)
  redis.call('SPUBLISH', key_base(KEYS[1]) .. 'wake', 'scheduled')
  return added
elseif ARGV[2] == 'remove' then
  redis.call('ZREM', KEYS[3], name)
  return redis.call('HDEL', KEYS[2], name)
end
return redis.error_reply('SQUE_INVALID schedules takes "set" or "remove", not ' ..
  string.format('%q', string.sub(ARGV[2] or '', 1, 20)))
