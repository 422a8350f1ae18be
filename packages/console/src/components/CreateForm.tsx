import { useMutation, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, type ReactNode, useState } from 'react';
import { api, type Resource } from '../lib/api';
import { ErrorBox } from './ui';

/**
 * A create form: the page supplies fields and turns them into the request body; the API's validation
 * messages are shown as they come (field paths included).
 */
export function CreateForm({
  plural,
  title,
  build,
  children,
  onCreated,
}: {
  plural: string;
  title: string;
  build(form: FormData): unknown;
  children: ReactNode;
  onCreated?(obj: Resource): void;
}) {
  const qc = useQueryClient();
  const [open, setOpen] = useState(false);
  const create = useMutation({
    mutationFn: (body: unknown) => api.create(plural, body),
    onSuccess: (obj) => {
      void qc.invalidateQueries({ queryKey: ['list', plural] });
      setOpen(false);
      onCreated?.(obj);
    },
  });
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    try {
      create.mutate(build(new FormData(e.currentTarget)));
    } catch (err) {
      create.reset();
      alert((err as Error).message);
    }
  };
  if (!open)
    return (
      <button type="button" onClick={() => setOpen(true)}>
        {title}
      </button>
    );
  return (
    <form className="card form" onSubmit={submit} aria-label={title}>
      <h2>{title}</h2>
      {children}
      <div className="row">
        <button type="submit" disabled={create.isPending}>
          {create.isPending ? 'Creating…' : 'Create'}
        </button>
        <button type="button" className="secondary" onClick={() => setOpen(false)}>
          Cancel
        </button>
      </div>
      <ErrorBox error={create.error} title="Not created" />
    </form>
  );
}

export function TextField({
  name,
  label,
  required,
  placeholder,
  help,
}: {
  name: string;
  label: string;
  required?: boolean;
  placeholder?: string;
  help?: string;
}) {
  return (
    <div className="field">
      <label htmlFor={`f-${name}`}>{label}</label>
      <input id={`f-${name}`} name={name} required={required} placeholder={placeholder} aria-describedby={help ? `h-${name}` : undefined} />
      {help && (
        <small id={`h-${name}`} className="muted">
          {help}
        </small>
      )}
    </div>
  );
}

/** Drops empty optional fields so the API's defaults apply. */
export function compact(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== '' && v !== undefined && v !== null));
}
