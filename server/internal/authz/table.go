package authz

import (
	"slices"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	mapfrontv1 "mapfront/gen/mapfront/v1"
)

// Role is what an identity may do (SPEC section 7). An identity may hold
// several.
type Role string

// The roles. Each is the least its holder needs.
const (
	// POSP is the gateway (and the server's own legacy listener in the
	// single-binary mode): the POSP's seven calls and nothing else.
	POSP Role = "posp"
	// Settlement is the settlement command: it submits and reads batches and
	// handles the manual-handling queue as its CLI does.
	Settlement Role = "settlement"
	// Operator is customer service and the queue: customers, passwords,
	// freezes, exception resolutions, and the reads.
	Operator Role = "operator"
	// Admin is provisioning and money in: the registry (sellers, stores,
	// terminals and their PIN keys), products, cash top-ups, and the reads.
	Admin Role = "admin"
	// Auditor reads and changes nothing.
	Auditor Role = "auditor"
	// Supervisor is the second pair of eyes: approves or rejects money moved
	// by hand that another identity proposed (four eyes), and reads.
	Supervisor Role = "supervisor"
)

// AllRoles lists every role, for parsing and for tests.
var AllRoles = []Role{POSP, Settlement, Operator, Admin, Auditor, Supervisor}

// reads are the look-ups every internal role but posp may make; the audit
// trail's read joins them.
var reads = []Role{Operator, Admin, Auditor, Supervisor}

// methodRoles is the one table of SPEC section 7: every RPC of
// OfflineService, AdminService and SettlementService, by full method name,
// with the roles allowed to call it. A method not in it is refused to
// everyone (TestEveryMethodInTable fails first).
var methodRoles = map[string][]Role{
	// OfflineService: the POSP's calls, through the gateway.
	mapfrontv1.OfflineService_OpenCard_FullMethodName:        {POSP},
	mapfrontv1.OfflineService_RepealCard_FullMethodName:      {POSP},
	mapfrontv1.OfflineService_Pay_FullMethodName:             {POSP},
	mapfrontv1.OfflineService_CancelPay_FullMethodName:       {POSP},
	mapfrontv1.OfflineService_UndoPay_FullMethodName:         {POSP},
	mapfrontv1.OfflineService_GetAccountInfo_FullMethodName:  {POSP},
	mapfrontv1.OfflineService_DownloadProduct_FullMethodName: {POSP},

	// AdminService: provisioning (admin).
	mapfrontv1.AdminService_UpsertProduct_FullMethodName:  {Admin},
	mapfrontv1.AdminService_UpsertSeller_FullMethodName:   {Admin},
	mapfrontv1.AdminService_UpsertStore_FullMethodName:    {Admin},
	mapfrontv1.AdminService_UpsertTerminal_FullMethodName: {Admin}, // with its PIN key
	// A terminal suspended for wrong PINs (SPEC section 7) is the
	// registry's: whoever provisions terminals decides it may guess again.
	mapfrontv1.AdminService_LiftTerminalSuspension_FullMethodName: {Admin},
	mapfrontv1.AdminService_TopUpCash_FullMethodName:              {Admin},
	// AdminService: customer service (operator).
	mapfrontv1.AdminService_CreateCustomer_FullMethodName:        {Operator},
	mapfrontv1.AdminService_SetPaymentPassword_FullMethodName:    {Operator},
	mapfrontv1.AdminService_ResetPaymentPassword_FullMethodName:  {Operator},
	mapfrontv1.AdminService_UnlockPaymentPassword_FullMethodName: {Operator},
	mapfrontv1.AdminService_FreezeAccount_FullMethodName:         {Operator},
	mapfrontv1.AdminService_UnfreezeAccount_FullMethodName:       {Operator},
	// AdminService: the manual-handling queue (operator; the settlement
	// command's `exceptions` subcommands).
	mapfrontv1.AdminService_ListExceptions_FullMethodName:   {Operator, Admin, Auditor, Settlement, Supervisor},
	mapfrontv1.AdminService_GetException_FullMethodName:     {Operator, Admin, Auditor, Settlement, Supervisor},
	mapfrontv1.AdminService_ResolveException_FullMethodName: {Operator, Settlement},
	// AdminService: reads.
	mapfrontv1.AdminService_ListProducts_FullMethodName: reads,
	mapfrontv1.AdminService_GetCustomer_FullMethodName:  reads,
	mapfrontv1.AdminService_GetOrder_FullMethodName:     reads,
	// The console's look-ups: reads like GetCustomer and GetOrder.
	mapfrontv1.AdminService_FindCustomerByID_FullMethodName:      reads,
	mapfrontv1.AdminService_GetTerminalKeyHistory_FullMethodName: reads,
	mapfrontv1.AdminService_ListStatement_FullMethodName:         reads,
	mapfrontv1.AdminService_VerifyLedger_FullMethodName:          reads,
	// AdminService: the audit trail, for those who answer for the changes.
	mapfrontv1.AdminService_ListAudit_FullMethodName: {Auditor, Admin, Supervisor},
	// AdminService: four eyes. Proposals are filed by ResolveException and
	// TopUpCash; only a supervisor decides (and never on its own proposal).
	mapfrontv1.AdminService_ListProposals_FullMethodName:   {Operator, Admin, Auditor, Settlement, Supervisor},
	mapfrontv1.AdminService_ApproveProposal_FullMethodName: {Supervisor},
	mapfrontv1.AdminService_RejectProposal_FullMethodName:  {Supervisor},

	// SettlementService: the settlement command; batch reports are reads.
	mapfrontv1.SettlementService_SubmitBatch_FullMethodName:     {Settlement},
	mapfrontv1.SettlementService_MarkFileMissing_FullMethodName: {Settlement},
	mapfrontv1.SettlementService_RunDaily_FullMethodName:        {Settlement},
	mapfrontv1.SettlementService_GetBatch_FullMethodName:        {Settlement, Operator, Admin, Auditor, Supervisor},
	mapfrontv1.SettlementService_ListBatches_FullMethodName:     {Settlement, Operator, Admin, Auditor, Supervisor},
}

// openMethods answer every caller, with a certificate or without: the gRPC
// health service, for load balancers and probes that hold no certificate.
var openMethods = map[string]bool{
	healthpb.Health_Check_FullMethodName: true,
	healthpb.Health_Watch_FullMethodName: true,
}

// authenticatedMethods answer any identity that holds at least one role,
// whichever: gRPC server reflection (both protocol versions; grpcurl tries
// v1 first, older clients speak v1alpha), so that integrators can list and
// describe the API without the proto files. It describes the services and
// messages, the same as proto/, and reads nothing stored; it is still closed
// to callers without a certificate or without a role, like everything but
// health.
var authenticatedMethods = map[string]bool{
	reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName:      true,
	reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: true,
}

// Allowed returns the roles allowed to call method (a full method name,
// "/mapfront.v1.AdminService/TopUpCash"); ok is false for a method the table
// does not know, which nobody may call.
func Allowed(method string) (roles []Role, ok bool) {
	if authenticatedMethods[method] {
		return slices.Clone(AllRoles), true
	}
	roles, ok = methodRoles[method]
	return append([]Role(nil), roles...), ok
}

// Audited reports whether the store records method's refusals: every
// method but the reads, which are those the auditor role may call (it
// "reads and changes nothing", Auditor). method is a full gRPC name.
func Audited(method string) bool {
	roles, known := Allowed(method)
	return known && !slices.Contains(roles, Auditor)
}

// Open reports whether method answers callers without a certificate.
func Open(method string) bool { return openMethods[method] }
