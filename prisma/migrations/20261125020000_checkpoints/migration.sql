-- CreateTable
CREATE TABLE "Checkpoint" (
    "runId" UUID NOT NULL,
    "epoch" INTEGER NOT NULL,
    "weights" BYTEA NOT NULL,
    "optimizer" BYTEA NOT NULL,
    "specs" JSONB NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Checkpoint_pkey" PRIMARY KEY ("runId")
);

-- AddForeignKey
ALTER TABLE "Checkpoint" ADD CONSTRAINT "Checkpoint_runId_fkey" FOREIGN KEY ("runId") REFERENCES "Run"("id") ON DELETE CASCADE ON UPDATE CASCADE;
