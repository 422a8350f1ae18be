import { useCallback } from 'react';
import type { Resource } from '../lib/api';
import { ResourceTable } from './ResourceTable';

/**
 * The events of one object, newest first. Selected by name on the server; an event that names
 * another uid belonged to an earlier object of the same name (deleted and re-created) and is left
 * out. Events recorded without a uid (before the object existed) stay.
 */
export function ObjectEvents({ object, emptyText }: { object: Resource; emptyText: string }) {
  const uid = object.metadata.uid;
  const ours = useCallback(
    (e: Resource) => {
      const of = e.spec.involvedObject?.uid as string | undefined;
      return !of || of === uid;
    },
    [uid],
  );
  return <ResourceTable plural="events" fieldSelector={`involvedObject.name=${object.metadata.name}`} rowFilter={ours} pageSize={100} emptyText={emptyText} />;
}
