-- AlterTable: what a run needs to be rerun, beside its spec (seed included) and backend
ALTER TABLE "Run" ADD COLUMN "versions" JSONB;
