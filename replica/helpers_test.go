package replica_test

import "github.com/jackc/pgx/v5"

type pgxTx = pgx.Tx

func pgxTxOptions() pgx.TxOptions { return pgx.TxOptions{} }
