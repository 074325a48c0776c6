// Times: the API speaks RFC 3339 UTC; people read local times.

const sameDay = (a, b) => a.toDateString() === b.toDateString();

/** A time for a table: the clock time today, else the date and time. */
export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  const time = d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  if (sameDay(d, new Date())) return time;
  return `${d.toLocaleDateString(undefined, { day: 'numeric', month: 'short', year: 'numeric' })} ${time}`;
}

/** A full date and time. */
export function full(iso) {
  if (!iso) return 'none';
  return new Date(iso).toLocaleString(undefined, {
    weekday: 'short', day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit',
  });
}

const pad = (n) => String(n).padStart(2, '0');

/** The value of a `datetime-local` input for a time. */
export function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** The time a `datetime-local` input names, or null when empty. */
export function fromLocalInput(value) {
  if (!value) return null;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new Error(`"${value}" is not a date and time.`);
  return d.toISOString();
}

/** `iso` plus `minutes` (from now when `iso` is empty or past). */
export function later(iso, minutes) {
  const base = iso ? Math.max(new Date(iso).getTime(), Date.now()) : Date.now();
  return new Date(base + minutes * 60_000).toISOString();
}
