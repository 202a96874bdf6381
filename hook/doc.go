// Package hook holds what a broker hands to the stores and gets back: one event type per hook
// point, Message, Rule, Result, the Backend contract, and the Dispatcher that runs the rules of
// every registered backend.
package hook
