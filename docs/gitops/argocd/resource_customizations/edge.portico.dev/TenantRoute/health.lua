-- Argo CD health check for edge.portico.dev/TenantRoute.
--
-- A TenantRoute is Healthy when the operator accepted it (Accepted), every backend and Secret it
-- names resolved (ResolvedRefs), its certificate is ready when it has TLS (CertificateReady), and
-- every connected proxy replica serves it (Programmed). A route refused for a reason a human must
-- fix (hostname conflict or not allowed, missing backend, invalid certificate, rejected by the
-- proxy) is Degraded; one waiting for its certificate, for a ready backend Pod (NoReadyEndpoints)
-- or for the proxies is Progressing.
local hs = { status = "Progressing", message = "Waiting for the Portico operator to admit the route" }
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
  local text = c.type .. "=" .. (c.status or "") .. " (" .. (c.reason or "") .. ")"
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

-- Refusals first: they do not go away by waiting (NoReadyEndpoints does, once a backend Pod is Ready).
for _, t in ipairs({ "Accepted", "ResolvedRefs" }) do
  local c = conditions[t]
  if c ~= nil and c.status == "False" and c.reason ~= "NoReadyEndpoints" then
    hs.status = "Degraded"
    hs.message = describe(c)
    return hs
  end
end
local cert = conditions["CertificateReady"]
if cert ~= nil and cert.status == "False" and cert.reason ~= "Pending" and cert.reason ~= "CertificateManagedExternally" then
  hs.status = "Degraded"
  hs.message = describe(cert)
  return hs
end
local programmed = conditions["Programmed"]
if programmed ~= nil and programmed.status == "False" and programmed.reason == "RejectedByProxy" then
  hs.status = "Degraded"
  hs.message = describe(programmed)
  return hs
end

-- Then what is still on its way.
for _, t in ipairs({ "Accepted", "ResolvedRefs" }) do
  local c = conditions[t]
  if c == nil or c.status ~= "True" then
    hs.message = c ~= nil and describe(c) or ("Waiting for the " .. t .. " condition")
    return hs
  end
end
if cert ~= nil and cert.status ~= "True" then
  hs.message = describe(cert)
  return hs
end
if programmed == nil or programmed.status ~= "True" then
  hs.message = programmed ~= nil and describe(programmed) or "Waiting for the proxies to serve the route"
  return hs
end

hs.status = "Healthy"
hs.message = describe(programmed)
return hs
