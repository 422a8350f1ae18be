import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from './api';

/** Runs a resource action (approve, revoke, ...) or delete and refreshes what shows that kind. */
export function useResourceAction(plural: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ name, verb, body }: { name: string; verb: string; body?: unknown }) =>
      verb === 'delete' ? api.remove(plural, name) : api.action(plural, name, verb, body),
    onSuccess: (obj, { name, verb }) => {
      if (verb === 'delete') qc.removeQueries({ queryKey: ['get', plural, name] });
      else qc.setQueryData(['get', plural, name], obj);
      void qc.invalidateQueries({ queryKey: ['list', plural] });
      void qc.invalidateQueries({ queryKey: ['summary'] });
    },
  });
}
