package idgen

import "errors"

var (
	// ErrLeaseExpired means the generator could not renew its lease in
	// time: it issues no IDs until a renewal succeeds.
	ErrLeaseExpired = errors.New("idgen: node lease not renewed in time; no IDs until it is")
	// ErrLeaseLost means another generator holds the node number now: this
	// one issues no more IDs. Make a new Generator.
	ErrLeaseLost = errors.New("idgen: node lease taken over by another generator")
	// ErrNoFreeNode means every node number is leased.
	ErrNoFreeNode = errors.New("idgen: every node number is leased")
	// ErrCeiling means the generator has issued IDs up to the millisecond
	// its lease reserves (its clock jumped ahead, or more than 4096 IDs a
	// millisecond for a long while): it issues more after the next renewal.
	ErrCeiling = errors.New("idgen: IDs used up to the lease's reserved millisecond until the next renewal")
	// ErrClosed is returned by Next after Close.
	ErrClosed = errors.New("idgen: generator closed")
	// ErrInvalidOptions is wrapped by New's errors about its options.
	ErrInvalidOptions = errors.New("idgen: invalid options")
)
