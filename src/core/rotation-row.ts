/** One break-glass credential's age against its rotation period (`breakglass rotation status`, evidence report). */
export interface RotationRow {
  /** Stable name of the credential (`target:pg`, `ssh-ca:hosts`, `envelope:<id>`, `signing-key`, `data-key`). */
  readonly key: string;
  readonly credential: string;
  readonly rotatedAt: number | null;
  readonly ageDays: number | null;
  readonly dueAt: number | null;
  readonly overdue: boolean;
  readonly how: string;
}
