import { CreateForm } from '../components/CreateForm';
import { labelFor } from '../components/Layout';
import { kindInfo, ResourceTable, type TableProps } from '../components/ResourceTable';
import { Empty } from '../components/ui';
import { useAuth } from '../lib/auth';

/**
 * Any kind in the protocol's KINDS without a page of its own: its table (columns from KINDS) and, when
 * creatable, a create form taking the spec as JSON. New kinds show up here until they get a page.
 */
export function Generic({ plural, detailPath = `/r/${plural}`, formatCell }: { plural: string; detailPath?: string; formatCell?: TableProps['formatCell'] }) {
  const { can } = useAuth();
  const info = kindInfo(plural);
  if (!info) return <Empty>There is no resource type “{plural}”.</Empty>;
  return (
    <>
      <h1>{labelFor(plural)}</h1>
      {info.creatable && can(plural, 'create') && (
        <CreateForm
          plural={plural}
          title={`Create ${info.singular}`}
          build={(f) => {
            const raw = String(f.get('spec') ?? '').trim();
            let spec: unknown = {};
            try {
              spec = raw ? JSON.parse(raw) : {};
            } catch {
              throw new Error('The spec is not valid JSON.');
            }
            return { metadata: { name: String(f.get('name') ?? '') }, spec };
          }}
        >
          <div className="field">
            <label htmlFor="f-name">Name</label>
            <input id="f-name" name="name" required />
          </div>
          <div className="field">
            <label htmlFor="f-spec">Spec (JSON)</label>
            <textarea id="f-spec" name="spec" rows={6} defaultValue="{}" />
          </div>
        </CreateForm>
      )}
      <ResourceTable plural={plural} rowLink={(r) => `${detailPath}/${encodeURIComponent(r.metadata.name)}`} formatCell={formatCell} />
    </>
  );
}
