import { describe, expect, it } from 'vitest';
import type { Resource } from './api-client.js';
import { renderClusterDescribe, renderDescribe, renderEvents, renderRolloutDescribe } from './describe-output.js';

const now = new Date('2026-12-06T10:00:00Z');
const at = (minutesAgo: number) => new Date(now.getTime() - minutesAgo * 60_000).toISOString();
const event = (reason: string, minutesAgo: number): Resource => ({
  metadata: { name: `e-${reason}` },
  spec: { type: 'Normal', reason, source: 'controller/cluster', message: `${reason} happened` },
  status: { lastTimestamp: at(minutesAgo) },
});

const cluster: Resource = {
  kind: 'Cluster',
  metadata: { name: 'shop-1', project: 'default', labels: { fleet: 'shops' }, generation: 3, createdAt: at(60) },
  spec: {
    type: 'native',
    profile: { name: 'shop-k3s', revision: 3 },
    site: 'site-002',
    nodes: [
      { host: 'cp', role: 'control-plane' },
      { host: 'w1', role: 'worker' },
      { host: 'w2', role: 'worker' },
    ],
    variables: { region: 'eu' },
  },
  status: {
    phase: 'Running',
    profileRevision: 2,
    controlPlaneEndpoint: 'https://10.0.0.1:6443',
    kubeconfigAvailable: true,
    nodes: [
      {
        host: 'cp',
        role: 'control-plane',
        phase: 'Ready',
        ready: true,
        kubernetesVersion: 'v1.31.1+k3s1',
        bootedSlot: 'B',
        osImageDigest: `sha256:${'a'.repeat(64)}`,
      },
      { host: 'w1', role: 'worker', phase: 'Provisioning', ready: false, message: 'rebooting' },
    ],
    upgrade: {
      id: 4,
      state: 'Rolling',
      fromRevision: 2,
      toRevision: 3,
      generation: 3,
      nodes: [
        { host: 'cp', role: 'control-plane', change: 'repave', reasons: ['os.digest', 'kubernetes.version'], phase: 'Done' },
        { host: 'w1', role: 'worker', change: 'repave', reasons: ['os.digest'], phase: 'Rebooting', message: 'trial boot in slot B' },
      ],
    },
    conditions: [
      { type: 'Ready', status: 'False', reason: 'NodesNotReady', message: 'waiting for w1', lastTransitionTime: at(2) },
      { type: 'Upgrading', status: 'True', reason: 'Rolling', message: 'upgrade 4 to revision 3: 1/2 node(s) done', lastTransitionTime: at(5) },
    ],
  },
};

describe('describe cluster', () => {
  const out = renderClusterDescribe(cluster, [event('NodeUpgraded', 3), event('UpgradeStarted', 9), event('NodeStaged', 6)], now);

  it('reads like kubectl describe: fields, then sections with tables, never a YAML dump of status', () => {
    expect(out).toMatch(/^Name: {9}shop-1\n/);
    expect(out).toContain('Labels:       fleet=shops\n');
    expect(out).toContain('Profile:      shop-k3s revision 3 (nodes run revision 2)\n');
    expect(out).toContain('Phase:        Running\n');
    expect(out).toContain('Kubeconfig:   available (edgeplane kubeconfig shop-1)\n');
    for (const s of ['Nodes:', 'Upgrade:', 'Conditions:', 'Events:']) expect(out).toMatch(new RegExp(`^${s}\\n`, 'm'));
    expect(out).not.toMatch(/^Status:/m);
    expect(out).not.toContain('osImageDigest');
  });

  it('has a node table, with nodes the status does not list yet as Pending', () => {
    expect(out).toMatch(/^Nodes:\n\s+HOST\s+ROLE\s+PHASE\s+READY\s+KUBERNETES\s+SLOT\s+OS IMAGE\s+MESSAGE\n/m);
    expect(out).toMatch(/^\s+cp\s+control-plane\s+Ready\s+true\s+v1\.31\.1\+k3s1\s+B\s+sha256:aaaaaaaaaaaa\.\.\./m);
    expect(out).toMatch(/^\s+w2\s+worker\s+Pending\s+false/m);
  });

  it('shows the upgrade with each node: change, what differs and phase', () => {
    expect(out).toContain('  Upgrade:      4: revision 2 -> 3\n');
    expect(out).toContain('  State:        Rolling, 1/2 node(s) done\n');
    expect(out).toMatch(/^\s+HOST\s+ROLE\s+CHANGE\s+WHAT\s+PHASE\s+MESSAGE\n\s+cp\s+control-plane\s+repave\s+os\.digest, kubernetes\.version\s+Done/m);
    expect(out).toMatch(/^\s+w1\s+worker\s+repave\s+os\.digest\s+Rebooting\s+trial boot in slot B$/m);
    expect(out).toMatch(/^\s+Upgrading\s+True\s+Rolling\s+5m\s+upgrade 4/m);
  });

  it('lists events oldest first, and only the latest ones when there are many', () => {
    const reasons = [...out.matchAll(/^\s+Normal\s+(\w+)/gm)].map((m) => m[1]);
    expect(reasons).toEqual(['UpgradeStarted', 'NodeStaged', 'NodeUpgraded']);
    const many = renderEvents(
      Array.from({ length: 40 }, (_, i) => event(`R${i}`, i)),
      now,
    );
    expect(many).toContain('(10 older event(s) not shown)');
    expect(many).not.toContain('R30 ');
    expect(many.trimEnd().split('\n').at(-1)).toMatch(/R0 happened$/);
  });
});

describe('describe rollout', () => {
  const rollout: Resource = {
    kind: 'Rollout',
    metadata: { name: 'shops-rev-3', generation: 1, createdAt: at(30) },
    spec: {
      targets: { selector: 'fleet=shops' },
      profile: { name: 'shop-k3s', revision: 3 },
      strategy: {
        batches: [
          { name: 'canary', limit: 1, successThreshold: '100%' },
          { name: 'rest', limit: '100%', successThreshold: '100%' },
        ],
        maxFailures: 1,
        requireApproval: true,
        disruptionBudgets: [{ labelKey: 'region', maxUnavailable: 1 }],
        clusterTimeout: '2h',
        prestageAhead: '2h',
      },
    },
    status: {
      phase: 'AwaitingApproval',
      message: 'approve to start batch rest',
      currentBatch: 1,
      startedAt: at(20),
      batches: [
        { name: 'canary', phase: 'Succeeded', total: 1, succeeded: 1, failed: 0, approved: true },
        { name: 'rest', phase: 'Pending', total: 2, succeeded: 0, failed: 0 },
      ],
      clusters: [
        { name: 'shop-2', batch: 0, site: 'site-003', state: 'succeeded', fromRevision: 2, startedAt: at(20), finishedAt: at(15) },
        {
          name: 'shop-4',
          batch: 1,
          site: 'site-004',
          state: 'waiting-for-window',
          reason: 'WindowClosed',
          nextWindowAt: new Date(now.getTime() + 3_600_000).toISOString(),
        },
        { name: 'shop-7', batch: -1, state: 'skipped', reason: 'SiteNotFound', message: 'no Site site-008' },
      ],
      counts: { total: 3, succeeded: 1, skipped: 1 },
      conditions: [],
    },
  };
  const out = renderRolloutDescribe(rollout, [event('BatchStarted', 20)], now);

  it('shows the plan, the phase, a batch table and a cluster table', () => {
    expect(out).toContain('Profile:      shop-k3s revision 3\n');
    expect(out).toContain('Targets:      selector fleet=shops\n');
    expect(out).toContain('Strategy:     max failures 1, approval required before each batch after the first, cluster timeout 2h, pre-stage 2h ahead\n');
    expect(out).toContain('Budgets:      at most 1 per region\n');
    expect(out).toContain('Phase:        AwaitingApproval\nMessage:      approve to start batch rest\n');
    expect(out).toMatch(
      /^Batches:\n\s+#\s+NAME\s+LIMIT\s+PHASE\s+CLUSTERS\s+SUCCEEDED\s+FAILED\s+APPROVED\n\s+1\s+canary\s+1\s+Succeeded\s+1\s+1\s+0\s+-\n\s+2\*\s+rest\s+100%\s+Pending\s+2\s+0\s+0\s+no\n/m,
    );
    expect(out).toMatch(/^\s+shop-4\s+2\s+site-004\s+waiting-for-window\s+<none>\s+<none>\s+<none>\s+in 1h\s+WindowClosed/m);
    expect(out).toMatch(/^\s+shop-7\s+-\s+<none>\s+skipped/m);
    for (const s of ['Clusters:', 'Conditions:  <none>', 'Events:']) expect(out).toMatch(new RegExp(`^${s.replace('*', '\\*')}`, 'm'));
    expect(out).not.toMatch(/^Status:/m);
  });
});

describe('describe host: identity', () => {
  const host = (status: Record<string, unknown>): Resource => ({ kind: 'EdgeHost', metadata: { name: 'edge-1', createdAt: at(5) }, spec: {}, status });

  it('says where the device key lives, and where a pending key lives', () => {
    const tpm = { kind: 'tpm', ekFingerprint: 'ab'.repeat(32), ekCertificate: '-----BEGIN CERTIFICATE-----' };
    const out = renderDescribe(host({ state: 'ready', identity: tpm, pendingIdentity: { kind: 'file' } }), [], now);
    expect(out).toMatch(/^Identity: +tpm: key held in the device's TPM 2\.0 \(ES256\), EK sha256 abababababababab, EK certificate on file$/m);
    expect(out).toMatch(/^ +pending key: file: Ed25519 key in the agent's data dir \(no TPM\)$/m);
    expect(renderDescribe(host({ state: 'ready', identity: { kind: 'file' } }), [], now)).toMatch(/^Identity: +file: /m);
    // A pre-registered host (no device yet) has no identity line.
    expect(renderDescribe(host({ state: 'pre-registered' }), [], now)).not.toMatch(/^Identity:/m);
  });
});
