// Batch IAM evaluation for the clinops gate: one process per gate run.
// stdin: {policies: [policy document, ...], simulations: [...]}: iam-simulate `Simulation` objects whose
// identity/boundary/endpoint policies are [name, index] pairs and whose resourcePolicy is an index into `policies`
// (each distinct document is sent, parsed and validated once, however many simulations use it; see
// iam_evaluator.py). stdout: a JSON array, one summary per simulation:
// {result, errors, layers: {identity|resource|boundary|endpoint: result}, allow: [...], deny: [...], ignored: [...]}
// where allow/deny name the deciding statements as "<layer>:<policy name>:<Sid or index>" and `ignored` lists
// request context keys the evaluator did not accept for the action (the caller treats that as a bad intent).
//
// Known gap of iam-simulate 0.1.173: it matches variable context keys only in the `prefix/${name}` form, so it
// drops `kms:EncryptionContext:<key>` (colon form). Such requests are validated first (action, ARN, policies),
// then evaluated by the library's own core (`authorize`, as its runUnsafeSimulation does, but keeping the VPC
// endpoint policies and the full analysis), which takes the context as given; nothing else takes that path.
// @cloud-copilot/iam-simulate is AGPL-3.0: it runs here as a separate program, never linked into clinops.
import {
  createValidatedPolicy, loadPolicy, validateEndpointPolicy, validateIdentityPolicy, validateResourcePolicy,
} from '@cloud-copilot/iam-policy'
import { runSimulation } from '@cloud-copilot/iam-simulate'

// `a.localeCompare(b, undefined, {sensitivity: 'accent'})` is how the library compares case-insensitively (condition
// operators, ARN patterns against resource types), and V8 builds a new ICU collator for every call with options: a
// third of the evaluator's CPU at 50 models. ECMA-402 defines localeCompare as
// `new Intl.Collator(locales, options).compare(this, that)`, so one collator per sensitivity gives the same answers;
// any other call (a locale, other options) takes the original path.
const localeCompare = String.prototype.localeCompare
const collators = new Map()
Object.defineProperty(String.prototype, 'localeCompare', {
  value: function cachedLocaleCompare(that, locales, options) {
    if (typeof this === 'string' && typeof that === 'string' && locales === undefined && typeof options === 'object' &&
      options !== null && (typeof options.sensitivity === 'string' || options.sensitivity === undefined) &&
      options.usage === undefined && options.localeMatcher === undefined && options.collation === undefined &&
      options.numeric === undefined && options.caseFirst === undefined && options.ignorePunctuation === undefined) {
      let collator = collators.get(options.sensitivity)
      if (collator === undefined) {
        collator = new Intl.Collator(undefined, { sensitivity: options.sensitivity })
        collators.set(options.sensitivity, collator)
      }
      return collator.compare(this, that)
    }
    return localeCompare.call(this, that, locales, options)
  },
  writable: true,
  configurable: true,
})

const core = (path) => import(new URL(`./node_modules/@cloud-copilot/iam-simulate/dist/esm/${path}`, import.meta.url))
const { authorize } = await core('core_engine/CoreSimulatorEngine.js')
const { AwsRequestImpl } = await core('request/request.js')
const { RequestContextImpl } = await core('requestContext.js')
const { DiscoveryContextKeyConstraints } = await core('context_keys/discoveryContextKeyConstraints.js')

function authorizeAsGiven(simulation) {
  const load = (list) => (list ?? []).map((p) => loadPolicy(p.policy, { name: p.name }))
  const { request } = simulation
  return authorize({
    request: new AwsRequestImpl(request.principal, request.resource, request.action,
      new RequestContextImpl(request.contextVariables)),
    sessionPolicy: undefined,
    identityPolicies: load(simulation.identityPolicies),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: simulation.resourcePolicy ? loadPolicy(simulation.resourcePolicy, { name: 'resource-policy' }) : undefined,
    permissionBoundaries: simulation.permissionBoundaryPolicies ? load(simulation.permissionBoundaryPolicies) : undefined,
    vpcEndpointPolicies: simulation.vpcEndpointPolicies ? load(simulation.vpcEndpointPolicies) : undefined,
    simulationParameters: { simulationMode: 'Strict', discoveryContextKeyConstraints: new DiscoveryContextKeyConstraints([]) },
    serviceSettings: { s3: {} },
  })
}

const LAYERS = {
  identity: 'identityAnalysis',
  resource: 'resourceAnalysis',
  boundary: 'permissionBoundaryAnalysis',
  endpoint: 'endpointAnalysis',
}

function statementName(layer, s) {
  const sid = s.statement?.Sid ?? s.explain?.identifier ?? '?'
  return `${layer}:${s.policyId ?? 'resource-policy'}:${sid}`
}

const ENCRYPTION_CONTEXT = 'kms:encryptioncontext:'

async function evaluate(simulation) {
  const response = await runSimulation(simulation, {})
  if (response.resultType === 'error') {
    return { result: 'Error', errors: response.errors, layers: {}, allow: [], deny: [], ignored: [] }
  }
  const results = response.resultType === 'single' ? [response.result] : response.results
  const ignored = [...new Set(results.flatMap((r) => r.ignoredContextKeys ?? []))]
  const out = { result: response.overallResult, errors: null, layers: {}, allow: [], deny: [], ignored }
  let analyses = results.map((r) => r.analysis ?? {})
  if (response.resultType === 'single' && ignored.some((k) => k.toLowerCase().startsWith(ENCRYPTION_CONTEXT))) {
    const analysis = authorizeAsGiven(simulation)
    analyses = [analysis]
    out.result = analysis.result
    out.ignored = ignored.filter((k) => !k.toLowerCase().startsWith(ENCRYPTION_CONTEXT))
  }
  for (const analysis of analyses) {
    for (const [layer, key] of Object.entries(LAYERS)) {
      const part = analysis[key]
      if (!part) continue
      out.layers[layer] = part.result
      for (const s of part.allowStatements ?? []) out.allow.push(statementName(layer, s))
      for (const s of part.denyStatements ?? []) out.deny.push(statementName(layer, s))
    }
  }
  return out
}

// A policy is validated once per role it plays (runSimulation reuses a ValidatedPolicy's errors) and the same
// document object is shared by every simulation that uses it.
const VALIDATORS = { identity: validateIdentityPolicy, resource: validateResourcePolicy, endpoint: validateEndpointPolicy }

function simulationsOf(batch) {
  const validated = new Map()
  const policy = (index, role) => {
    const key = `${role}:${index}`
    if (!validated.has(key)) {
      if (!Number.isInteger(index) || index < 0 || index >= batch.policies.length) {
        throw new Error(`policy reference ${index} is not in the batch's table of ${batch.policies.length}`)
      }
      validated.set(key, createValidatedPolicy(batch.policies[index], VALIDATORS[role]))
    }
    return validated.get(key)
  }
  const list = (refs, role) => refs?.map(([name, index]) => ({ name, policy: policy(index, role) }))
  return batch.simulations.map((s) => {
    const simulation = { ...s }
    for (const [field, role] of [['identityPolicies', 'identity'], ['permissionBoundaryPolicies', 'identity'],
      ['vpcEndpointPolicies', 'endpoint']]) {
      if (s[field] != null) simulation[field] = list(s[field], role)
    }
    if (s.resourcePolicy != null) simulation.resourcePolicy = policy(s.resourcePolicy, 'resource')
    return simulation
  })
}

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const simulations = simulationsOf(JSON.parse(Buffer.concat(chunks).toString('utf8')))
// Simulations are independent; running them concurrently lets the evaluator's data loading overlap.
const answers = await Promise.all(
  simulations.map((simulation) =>
    evaluate(simulation).catch((error) => ({
      result: 'Error', errors: { message: String(error?.message ?? error) }, layers: {}, allow: [], deny: [], ignored: [],
    })),
  ),
)
process.stdout.write(JSON.stringify(answers))
