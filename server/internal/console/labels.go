package console

import (
	"fmt"
	"html/template"
	"strings"

	"mapfront/server/internal/authz"
	"mapfront/server/internal/mapfront"
)

// The console is in Chinese; the domain and the database spell states,
// kinds and roles as English words (the API's enum words, internal/enumtext).
// Each word the console shows has its Chinese label here, one table per
// field; the page shows the label with the word in its title (what the
// settlement command and the logs print), or the word itself if a newer
// database holds one this build does not know. TestEveryEnumHasALabel checks
// every value of each enum, from the proto enums and the database's CHECK
// constraints.
var labels = map[string]map[string]string{
	// The manual-handling queue's types (SPEC section 6). missing_from_file
	// is one payment the day's file lacks, not the whole file (文件缺失 is
	// the batch state file_missing, as the POSP guide says).
	"exception_type": {
		string(mapfront.ExAmountMismatch): "金额不符",
		string(mapfront.ExNotOpenable):    "无法开通",
		string(mapfront.ExDuplicate):      "重复",
		string(mapfront.ExMissing):        "文件中没有",
		string(mapfront.ExOverpaid):       "多付",
		string(mapfront.ExIncomplete):     "逾期未付足",
		string(mapfront.ExBadLine):        "无法解析的行",
		string(mapfront.ExDateMismatch):   "日期不符",
	},
	"exception_state": {
		mapfront.ExceptionOpen:     "待处理",
		mapfront.ExceptionResolved: "已处理",
	},
	"action": {
		string(mapfront.ActionActivate):   "开卡生效",
		string(mapfront.ActionRefundOwed): "应退款",
		string(mapfront.ActionIgnore):     "忽略",
		string(mapfront.ActionLinkOrder):  "关联订单",
	},
	"batch_state": {
		mapfront.BatchRunning:     "进行中",
		mapfront.BatchSettled:     "已完成",
		mapfront.BatchFileMissing: "文件缺失",
		mapfront.BatchFailed:      "失败",
		mapfront.BatchRejected:    "文件被拒",
	},
	"proposal_kind": {
		string(mapfront.ProposeResolve): "异常处理",
		string(mapfront.ProposeTopUp):   "现金充值",
	},
	"proposal_state": {
		mapfront.ProposalPending:  "待复核",
		mapfront.ProposalApproved: "已批准",
		mapfront.ProposalRejected: "已驳回",
	},
	"account_kind": {
		"cash":   "现金账户",
		"card":   "卡账户",
		"system": "系统账户",
	},
	"account_status": {
		string(mapfront.Pending): mapfront.Pending.Chinese(),
		string(mapfront.Active):  mapfront.Active.Chinese(),
		string(mapfront.Frozen):  mapfront.Frozen.Chinese(),
		string(mapfront.Closed):  mapfront.Closed.Chinese(),
	},
	// An order is a card order ("card", GetOrder's word) or a payment
	// order (pay_orders.kind).
	"order_kind": {
		"card":   "开卡订单",
		"pay":    "消费",
		"cancel": "消费撤销",
	},
	// card_orders.status and pay_orders.status.
	"order_status": orderStatus,
	// card_payments.status: one open_card payment of a card order.
	"payment_status": paymentStatus,
	// A terminal key's kind (terminal_requests.kind).
	"key_kind": {
		mapfront.KindOpenCard:  "开卡",
		mapfront.KindPay:       "消费",
		mapfront.KindPayCancel: "消费撤销",
	},
	// A terminal key history's status column: the order's status, the
	// payment's, or the stored outcome's state (terminal_requests.state).
	"history_status": merge(orderStatus, paymentStatus, map[string]string{
		"approved":  "已批准",
		"declined":  "已拒绝",
		"tombstone": "冲正（先于消费）",
		"reversed":  "已冲正",
	}),
	// ledger_txns.kind: what moved the money of a statement line.
	"ledger_kind": {
		"activate": "开卡生效",
		"release":  "分期释放",
		"repeal":   "开卡撤销",
		"pay":      "消费",
		"cancel":   "消费撤销",
		"undo":     "冲正",
		"topup":    "现金充值",
		"demo":     "演示数据",
	},
	// An audit record's method (the part after the service): the ones of
	// the four-eyes path, where the RPC and what it did differ. Filing a
	// proposal is ProposeResolution or ProposeTopUp, not the ResolveException
	// or TopUpCash that filed it: "ResolveException 成功" read as resolved
	// while nothing had moved. Other methods are shown as they are.
	"audit_method": {
		"ProposeResolution": "提交处理提案（待复核，未变动）",
		"ProposeTopUp":      "提交充值提案（待复核，未变动）",
		"ResolveException":  "处理异常",
		"TopUpCash":         "现金充值",
		"ApproveProposal":   "批准提案",
		"RejectProposal":    "驳回提案",
	},
	"audit_outcome": {
		"ok":      "成功",
		"refused": "被拒绝",
	},
	"role": {
		string(authz.POSP):       "POSP网关",
		string(authz.Settlement): "日切程序",
		string(authz.Operator):   "操作员",
		string(authz.Admin):      "管理员",
		string(authz.Auditor):    "审计员",
		string(authz.Supervisor): "复核员",
	},
}

var orderStatus = map[string]string{
	"pending":   "待生效",
	"active":    "已生效",
	"closed":    "已关闭",
	"success":   "成功",
	"cancelled": "已撤销",
	"reversed":  "已冲正",
}

var paymentStatus = map[string]string{
	"paid":     "已付款",
	"repealed": "已撤销",
	"refunded": "已记应退款",
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// labelText is the Chinese label of a word of the field, or the word when
// it has none (or is empty). Errors: a field without a table (a template's
// mistake, which the page tests meet).
func labelText(field string, word any) (string, error) {
	table, ok := labels[field]
	if !ok {
		return "", fmt.Errorf("console: no label table %q", field)
	}
	w := fmt.Sprint(word)
	if l, ok := table[w]; ok {
		return l, nil
	}
	return w, nil
}

// auditMethod is an audit record's method as the trail page shows it: the
// label of its name after the service, the full method in the title; a
// method without a label (or not an RPC's, as settlement.AutoResolve) as it
// is.
func auditMethod(method string) template.HTML {
	short := method[strings.LastIndex(method, "/")+1:]
	if l, ok := labels["audit_method"][short]; ok {
		return template.HTML(`<span title="` + template.HTMLEscapeString(method) + `">` + template.HTMLEscapeString(l+" "+short) + `</span>`)
	}
	return template.HTML(template.HTMLEscapeString(method))
}

// label is labelText as HTML, with the word in the title: the label for the
// reader, the word the CLI and the logs use on hover.
func label(field string, word any) (template.HTML, error) {
	l, err := labelText(field, word)
	if err != nil {
		return "", err
	}
	w := fmt.Sprint(word)
	if l == w {
		return template.HTML(template.HTMLEscapeString(w)), nil
	}
	return template.HTML(`<span title="` + template.HTMLEscapeString(w) + `">` + template.HTMLEscapeString(l) + `</span>`), nil
}
