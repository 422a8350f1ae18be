import { connect, register, TestDevice, waitFor } from '../../../../test/support/device.js';
import type { TestServer } from '../../../../test/support/server.js';

/**
 * Hand-driven nodes for cluster tests: real registration and channel, and manager status written
 * by the test (what the agent's os/kubernetes managers would report). Test support only.
 */
export class FakeNode {
  ws!: Awaited<ReturnType<typeof connect>>['ws'];
  messages: any[] = [];
  private constructor(
    readonly device: TestDevice,
    readonly name: string,
  ) {}

  static async create(t: TestServer, token: string, online = true): Promise<FakeNode> {
    const d = await TestDevice.create();
    const r = await register(t.url, await d.registerBody(token));
    const n = new FakeNode(d, r.body.hostName);
    if (online) await n.connect(t);
    return n;
  }

  async connect(t: TestServer): Promise<void> {
    const c = await connect(t.url, await this.device.connectToken(this.name));
    this.ws = c.ws;
    this.messages = c.messages;
    this.ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 'test-1' }));
    await waitFor(() => this.messages.find((m) => m.type === 'welcome'));
    await waitFor(async () => (await t.api('GET', `/api/v1/edgehosts/${this.name}`)).body.status.connectivity === 'online');
  }

  /** The last spec the server pushed to this node. */
  spec(): any {
    return [...this.messages].reverse().find((m) => m.type === 'spec');
  }

  report(managers: Record<string, unknown>): void {
    this.ws.send(JSON.stringify({ type: 'status', observedGeneration: this.spec()?.generation, status: { managers } }));
  }

  /** Reports what a healthy node on `digest` running Kubernetes `version` reports. */
  reportReady(digest: string, version: string, extra: Record<string, unknown> = {}): void {
    const k = this.spec()?.spec?.kubernetes;
    this.report({
      os: { phase: 'Committed', bootedSlot: 'B', activeSlot: 'B', digest, slots: {} },
      kubernetes: { phase: 'Ready', ready: true, distribution: k?.distribution, version, nodeName: this.name, ...extra },
    });
  }

  close(): void {
    this.ws?.close();
  }
}

export const DIGEST = `sha256:${'a'.repeat(64)}`;

export function profileBody(name: string, over: Record<string, unknown> = {}) {
  return {
    metadata: { name },
    spec: {
      layers: {
        os: { image: `127.0.0.1:1/edge/os@${DIGEST}` },
        kubernetes: { distribution: 'k3s', version: 'v1.30.4+k3s1', config: { 'cluster-domain': '${var.domain}' } },
        network: { cni: 'flannel', values: {} },
        addons: [{ name: 'hello', manifest: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hello}\ndata: {site: "${var.site}"}\n' }],
      },
      variables: [
        { name: 'domain', default: 'cluster.local' },
        { name: 'site', required: true },
      ],
      ...over,
    },
  };
}
