-- Argo CD health check for alexa.operator.dev SkillAccountLinking and SkillEnablement.
-- The same script serves both kinds (deploy/argocd/argocd-cm-patch.yaml embeds it twice;
-- tests/deploy/ checks the copies match and runs this file on sample objects). It reads the
-- kstatus-style conditions the operator writes (Ready, Reconciling, Stalled), in this order:
--   no status or no conditions yet                                 -> Progressing
--   Ready=False with reason Paused (alexa.operator.dev/paused)      -> Suspended
--   status.observedGeneration < metadata.generation (not yet seen)  -> Progressing
--   Stalled=True (needs a human: bad spec, credentials, permission) -> Degraded
--   Ready=True                                                      -> Healthy
--   Ready=False, reason DriftDetected, not Reconciling (Observe)    -> Degraded
--   anything else (Reconciling=True: creating, updating, retrying)  -> Progressing
-- The message is the Ready condition's (falling back to the deciding condition's). Written for
-- Lua 5.1, the dialect of Argo CD's interpreter (gopher-lua).
local hs = {}

local function find_condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == kind then
      return condition
    end
  end
  return nil
end

local function describe(primary, fallback, default)
  for _, condition in ipairs({ primary, fallback }) do
    if condition ~= nil then
      if condition.message ~= nil and condition.message ~= "" then
        return condition.message
      end
      if condition.reason ~= nil and condition.reason ~= "" then
        return condition.reason
      end
    end
  end
  return default
end

local status = obj.status
if status == nil or status.conditions == nil or #status.conditions == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local ready = find_condition(status.conditions, "Ready")
local stalled = find_condition(status.conditions, "Stalled")
local reconciling = find_condition(status.conditions, "Reconciling")

if ready ~= nil and ready.status == "False" and ready.reason == "Paused" then
  hs.status = "Suspended"
  hs.message = describe(ready, nil, "Paused")
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(ready, stalled, "Stalled")
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, nil, "Ready")
  return hs
end

local working = reconciling ~= nil and reconciling.status == "True"
if ready ~= nil and ready.status == "False" and ready.reason == "DriftDetected" and not working then
  hs.status = "Degraded"
  hs.message = describe(ready, nil, "DriftDetected")
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready, reconciling, "Reconciling")
return hs
