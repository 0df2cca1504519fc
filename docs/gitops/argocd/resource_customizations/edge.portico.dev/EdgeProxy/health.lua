-- Argo CD health check for edge.portico.dev/EdgeProxy.
--
-- An EdgeProxy reports kstatus-style conditions: exactly one of Ready, Reconciling or Stalled is
-- True, each stamped with the generation it describes, and status.observedGeneration says which
-- spec the status is about. Degraded only when a human must act (Stalled); a rollout in progress
-- or a transient apply error is Progressing; Healthy once the proxy fleet is fully rolled out.
local hs = { status = "Progressing", message = "Waiting for the Portico operator to report the EdgeProxy's status" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= nil and obj.status.observedGeneration < generation then
  hs.message = "Waiting for the Portico operator to observe generation " .. generation
  return hs
end

-- Conditions stamped with an older generation say nothing about the current spec.
local conditions = {}
for _, c in ipairs(obj.status.conditions) do
  if generation == nil or c.observedGeneration == nil or c.observedGeneration >= generation then
    conditions[c.type] = c
  end
end

local function describe(c)
  if c.message ~= nil and c.message ~= "" then
    return (c.reason or "") .. ": " .. c.message
  end
  return c.reason or ""
end

local stalled, ready, reconciling = conditions["Stalled"], conditions["Ready"], conditions["Reconciling"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
  return hs
end
if ready ~= nil then
  hs.message = describe(ready)
end
return hs
