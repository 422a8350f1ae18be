import { useQuery } from '@tanstack/react-query';
import { ConnectivityHistory } from '../components/ConnectivityHistory';
import { HostOs } from '../components/HostOs';
import { ObjectEvents } from '../components/ObjectEvents';
import { ErrorBox, Loading, StateBadge } from '../components/ui';
import { api, formatValue } from '../lib/api';
import { useAuth } from '../lib/auth';
import { canOpenSession, clusterOfHost } from '../lib/host-rules';
import { Link } from '../lib/router';
import { HostActions } from './Hosts';

function Field({ label, value }: { label: string; value: unknown }) {
  return (
    <>
      <dt>{label}</dt>
      <dd>{formatValue(value)}</dd>
    </>
  );
}

export function HostDetail({ name }: { name: string }) {
  const { can } = useAuth();
  const q = useQuery({ queryKey: ['get', 'edgehosts', name], queryFn: () => api.get('edgehosts', name) });
  if (q.isPending) return <Loading what={`host ${name}`} />;
  if (q.error) return <ErrorBox error={q.error} title={`Could not load host ${name}`} />;
  const h = q.data;
  const inv = h.status.inventory ?? {};
  const cluster = clusterOfHost(h);
  return (
    <>
      <p>
        <Link to="/hosts">← Edge hosts</Link>
      </p>
      <h1>
        {name} <StateBadge value={h.status.state} /> <StateBadge value={h.status.connectivity} />
      </h1>
      <div className="row">
        <HostActions host={h} />
        {can('edgehosts', 'remote-shell') && canOpenSession(h) && (
          <Link to={`/hosts/${encodeURIComponent(name)}/shell`} className="button">
            Open shell
          </Link>
        )}
      </div>
      <div className="cards">
        <section className="card" aria-labelledby="conn-h">
          <h2 id="conn-h">Connectivity</h2>
          <dl>
            <dt>Connectivity</dt>
            <dd data-testid="connectivity">{h.status.connectivity}</dd>
            <Field label="Last seen" value={h.status.lastSeen} />
            <Field label="Agent version" value={h.status.agentVersion} />
            <Field label="Registered" value={h.status.registeredAt} />
            <Field label="Registered via" value={h.status.registeredVia} />
            <Field label="Registration token" value={h.status.registrationToken} />
            {/* Where the device key lives: in the device's TPM 2.0 (it cannot be copied off the device) or in a file. */}
            <dt>Identity</dt>
            <dd
              data-testid="host-identity"
              title={h.status.identity?.ekFingerprint ? `TPM endorsement key sha256 ${h.status.identity.ekFingerprint}` : undefined}
            >
              {h.status.identity?.kind === 'tpm'
                ? `TPM 2.0 key${h.status.identity.ekCertificate ? ' (EK certificate on file)' : ''}`
                : h.status.identity?.kind === 'file'
                  ? 'File key (no TPM)'
                  : '—'}
              {h.status.pendingIdentity ? `; pending key: ${h.status.pendingIdentity.kind === 'tpm' ? 'TPM 2.0' : 'file'}` : ''}
            </dd>
            <Field label="Site" value={h.spec.site} />
            <dt>Cluster</dt>
            <dd data-testid="host-cluster">{cluster ? <Link to={`/clusters/${encodeURIComponent(cluster)}`}>{cluster}</Link> : '—'}</dd>
            <Field
              label="Labels"
              value={Object.entries(h.metadata.labels)
                .map(([k, v]) => `${k}=${v}`)
                .join(', ')}
            />
          </dl>
        </section>
        <section className="card" aria-labelledby="inv-h">
          <h2 id="inv-h">Inventory</h2>
          {h.status.inventory ? (
            <dl>
              <Field label="Hostname" value={inv.hostname} />
              <Field label="OS" value={inv.os ? `${inv.os.name} ${inv.os.version} (kernel ${inv.os.kernel})` : undefined} />
              {/* Agent mode: a host that keeps its own OS (no A/B slots); an agent that reports no mode is on Edgeplane OS. */}
              <dt>OS mode</dt>
              <dd
                data-testid="os-mode"
                title={inv.osMode === 'unmanaged' ? "Kubernetes is installed from the profile's artifact" : 'the OS image carries Kubernetes'}
              >
                {inv.osMode === 'unmanaged' ? 'Unmanaged OS (keeps its own)' : 'Managed OS (Edgeplane A/B slots)'}
              </dd>
              <Field label="CPU" value={inv.cpu ? `${inv.cpu.model}, ${inv.cpu.cores} cores, ${inv.cpu.arch}` : undefined} />
              <Field label="Memory" value={inv.memoryBytes ? `${(inv.memoryBytes / 2 ** 30).toFixed(1)} GiB` : undefined} />
              <Field
                label="Disks"
                value={(inv.disks ?? []).map((d: { name: string; sizeBytes: number }) => `${d.name} ${(d.sizeBytes / 1e9).toFixed(0)} GB`).join(', ')}
              />
              <Field label="Network" value={(inv.nics ?? []).map((n: { name: string; mac?: string }) => `${n.name}${n.mac ? ` ${n.mac}` : ''}`).join(', ')} />
              <Field label="Device UID" value={h.status.deviceUid} />
              <Field label="Simulated" value={inv.simulated} />
            </dl>
          ) : (
            <p className="muted">No inventory reported yet.</p>
          )}
        </section>
        <HostOs host={h} />
      </div>
      <section aria-labelledby="hist-h">
        <h2 id="hist-h">Connectivity history</h2>
        <ConnectivityHistory host={name} />
      </section>
      <section aria-labelledby="ev-h">
        <h2 id="ev-h">Events</h2>
        <ObjectEvents object={h} emptyText="No events for this host yet." />
      </section>
    </>
  );
}
